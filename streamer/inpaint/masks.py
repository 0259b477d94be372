"""Growing occlusion masks before inpainting: an occluder's soft edge is not the camera's face either."""

from __future__ import annotations

import cv2
import numpy as np


def grow(masks: np.ndarray, pixels: int) -> np.ndarray:
    """(n, S, S) masks (bool or 0/1), each grown by ``pixels`` in every direction -> (n, S, S) bool."""
    if not pixels:
        return masks.astype(bool)
    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)
    return np.stack([cv2.dilate(m.astype(np.uint8), kernel) for m in masks]).astype(bool)
