"""Vector helpers shared by the embedders and the gallery."""

import numpy as np


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """(n, D) -> (n, D) float32 rows of unit length (zero rows stay zero)."""
    return (vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)).astype(np.float32)
