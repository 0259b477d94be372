"""The face area of an aligned crop, where occlusion is measured."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from streamer.records import Occlusion


@lru_cache(maxsize=8)
def face_region(size: int) -> np.ndarray:
    """(size, size) bool: the face area of an aligned crop (brows to chin), where occlusion is measured."""
    s = size / 112.0
    region = np.zeros((size, size), np.uint8)
    cv2.ellipse(region, (round(56 * s), round(64 * s)), (round(36 * s), round(46 * s)), 0, 0, 360, 1, -1)
    region = region.astype(bool)
    region.flags.writeable = False
    return region


def occlusion_from_mask(mask: np.ndarray, classes: tuple[str, ...]) -> Occlusion:
    """Clips ``mask`` to the face area and measures the occluded share of it."""
    region = face_region(mask.shape[0])
    mask = mask & region
    fraction = float(mask.sum() / region.sum())
    return Occlusion(mask=mask, classes=classes if mask.any() else (), fraction=fraction)
