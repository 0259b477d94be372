"""Scores compared in the gallery's own frame: its mean taken away, its principal axes partly whitened.

dlib's descriptors share a large common part (different people score 0.78-0.90 by plain cosine) and span about
78 of their 128 dimensions, so a plain cosine is mostly what every face has in common. Moved into a frame
fitted on the gallery's enrolled faces (mean removed, each principal axis scaled by variance^-exponent, unit
length again), what tells this gallery's people apart weighs more. On ``streamer eval identity``'s reduced run
(README, "dlib in the gallery's frame"), the product's decision with dlib at exponent 0.15, TAR at FAR 1%, clean /
face mask / sunglasses / hand: 0.817 / 0.402 / 0.387 / 0.507 by plain cosine, 0.824 / 0.440 / 0.485 / 0.573 in
the frame of the 199 enrolled photos. MobileFaceNet gained nothing (``benchmarks/embedding_normalisation.py``).

A frame moves every score: the fixed thresholds, which are plain cosines, do not apply in it. The fixed
threshold there is where one comparison with a stranger passes FIXED_FALSE_ACCEPT of the time, from the
gallery's own impostor scores in the frame and the tail measured for it (calibration.MEASURED_FRAME_TAILS).
A gallery of fewer than MIN_PEOPLE enrolled people says too little of its axes: it is compared plainly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamer.embed.vectors import l2_normalise
from streamer.identify.calibration import ImpostorTail, measured_tail

MIN_PEOPLE = 50  # the impostor tail holds from 50 people (calibration.MEASURED_FRAME_TAILS); at 30 it reached further
FIXED_FALSE_ACCEPT = 0.01  # the frame's fixed threshold: one comparison with a stranger in 100 passes it
# The exponent per embedder backend where the eval found the frame helps (benchmarks/embedding_normalisation.py,
# --fit gallery, exponents 0, 0.15, 0.25, 0.35): dlib alone and with its student, best or within 0.01 at 0.15.
MEASURED_EXPONENT: dict[str, float] = {"dlib": 0.15}
DEFAULT_EXPONENT = 0.15  # an embedder given a frame by ``gallery.frame: true`` without one measured


@dataclass(frozen=True)
class FrameSetting:
    """A gallery compared in its own frame: how strongly its axes are whitened, and how far strangers' faces
    reach in such a frame (None: as far as the normal's)."""

    exponent: float
    tail: ImpostorTail | None = None


def frame_setting(setting: bool | str, backend: str, model_id: str, student: bool,
                  plain_thresholds: bool) -> FrameSetting | None:
    """``gallery.frame`` resolved for an embedder (with its student or not). ``auto``: a frame where one was
    measured to help the backend, unless the config sets thresholds as plain cosines (``plain_thresholds``)."""
    if setting is False or backend == "lbp_histogram" or \
            setting == "auto" and (backend not in MEASURED_EXPONENT or plain_thresholds):
        return None  # LBP matches only the cells each face shows: no one frame fits them
    return FrameSetting(MEASURED_EXPONENT.get(backend, DEFAULT_EXPONENT), measured_tail(model_id, student, framed=True))


@dataclass(frozen=True)
class GalleryFrame:
    mean: np.ndarray  # (D,) the enrolled faces' mean
    transform: np.ndarray  # (D, D) their principal axes, each scaled by its variance^-exponent

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """(n, D) unit vectors -> (n, D) unit vectors in the frame."""
        return l2_normalise((np.asarray(vectors, np.float32) - self.mean) @ self.transform)


def fit_frame(vectors: np.ndarray, exponent: float) -> GalleryFrame:
    """The frame of (m, D) unit vectors (the enrolled faces). Axes with no variance (dlib leaves about 50 of 128
    empty) weigh as the weakest real one, so nothing a probe carries there is blown up."""
    vectors = np.asarray(vectors, np.float64)
    mean = vectors.mean(0)
    centred = vectors - mean
    variances, axes = np.linalg.eigh(centred.T @ centred / len(centred))
    real = variances > 1e-6 * max(float(variances.max()), 1e-12)
    floor = float(variances[real].min()) if real.any() else 1.0
    scale = np.clip(variances, floor, None) ** -exponent
    return GalleryFrame(mean.astype(np.float32), (axes * scale).astype(np.float32))
