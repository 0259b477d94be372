"""Vector helpers shared by the embedders and the gallery."""

import numpy as np


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """(n, D) -> (n, D) float32 rows of unit length (zero rows stay zero)."""
    return (vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)).astype(np.float32)


# Ends the model-name part of an embedder's model id when it adds each face's mirror image (embedder.mirror).
MIRROR_TAG = "+mirror"


def mirror_summed(features: np.ndarray, n: int) -> np.ndarray:
    """(2n, D) raw features of n faces, then of their mirror images -> (n, D) each face's two added: a face
    described from both sides, steadier against a turned head or one hidden side than either view alone."""
    return features[:n] + features[n:]
