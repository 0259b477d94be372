"""The offline default occluder segmenter: pixels whose colour does not belong to this face's skin.

Classical and weight-free. The face's own skin colour is estimated from the
cheeks and forehead (median and spread in YCrCb, gated by a generic skin
range); face pixels far from it in chroma, or much darker, form candidate
regions; small ones (eyes, nostrils, an open mouth) are discarded by area.
It finds masks, scarves and sunglasses well and misses occluders that share
the face's skin tone (a hand of the same tone). It cannot name occluder
types, so classes are face regions: ``lower_face``, ``eyes``, ``other``.
The project's trained YOLO-seg model (``occlusion.backend: yolo_seg``)
replaces it.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from engines import Device
from streamer.config_base import StrictModel
from streamer.occlusion.region import face_region, occlusion_from_mask
from streamer.records import AlignedCrop, Occlusion

# Skin sample patches in 112-px ArcFace crop coordinates (x1, y1, x2, y2): forehead, upper cheeks under
# the eyes, nose bridge. Pooled, so the median stays skin while an occluder covers under half of them.
_SKIN_PATCHES_112 = [(42, 20, 70, 36), (24, 56, 40, 64), (72, 56, 88, 64), (50, 44, 62, 56)]
# Natural dark or non-skin parts (each eye, the mouth with teeth and lips): a region confined to one of
# these is the face itself, not an occluder.
_FEATURE_ZONES_112 = [(27, 43, 50, 60), (62, 43, 85, 60), (32, 82, 80, 102)]
_GENERIC_SKIN_CR = (133, 180)
_GENERIC_SKIN_CB = (70, 130)


class ColorAnomalyConfig(StrictModel):
    backend: Literal["color_anomaly"] = "color_anomaly"
    chroma_sigma: float = Field(3.5, gt=0, description="chroma distance from skin, in robust std units")
    dark_ratio: float = Field(0.45, gt=0, lt=1, description="pixels darker than this share of skin luma")
    # Smallest region kept, as a share of the face, by where it sits. Measured on real faces
    # (../shared/data/masked_faces, SCRFD-aligned): see tests/test_occlusion.py and the README.
    min_lower_face: float = Field(0.25, gt=0, lt=1, description="below the nose (masks, scarves, hands)")
    min_eyes: float = Field(0.12, gt=0, lt=1, description="around the eyes (sunglasses)")
    min_other: float = Field(0.20, gt=0, lt=1, description="elsewhere (caps, hair, objects)")


class ColorAnomalySegmenter:
    class_names = ("eyes", "lower_face", "other")  # every class ``segment`` can report

    def __init__(self, config: ColorAnomalyConfig, device: Device):
        self._config = config
        self.description = "colour anomaly against the face's own skin (classical, no weights; CPU)"

    def segment(self, crops: list[AlignedCrop]) -> list[Occlusion]:
        return [self._segment_one(c.image, c.outside) for c in crops]

    def _segment_one(self, image: np.ndarray, outside: np.ndarray | None = None) -> Occlusion:
        cfg = self._config
        size = image.shape[0]
        region = face_region(size)
        ycrcb = cv2.cvtColor(cv2.GaussianBlur(image, (3, 3), 0), cv2.COLOR_BGR2YCrCb).astype(np.float32)
        y, cr, cb = ycrcb[..., 0], ycrcb[..., 1], ycrcb[..., 2]
        (my, mcr, mcb), (scr, scb) = _skin_model(ycrcb, size)
        chroma = np.sqrt(((cr - mcr) / scr) ** 2 + ((cb - mcb) / scb) ** 2)
        candidate = ((chroma > cfg.chroma_sigma) | (y < cfg.dark_ratio * my)) & region
        if outside is not None:  # the replicated border beyond the frame's edge is no occluder
            candidate &= ~outside
        k = max(3, size // 28) | 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        candidate = cv2.morphologyEx(candidate.astype(np.uint8), cv2.MORPH_OPEN, kernel)
        candidate = cv2.morphologyEx(candidate, cv2.MORPH_CLOSE, kernel)
        count, labels, stats, centroids = cv2.connectedComponentsWithStats(candidate, connectivity=8)
        minimum = {"lower_face": cfg.min_lower_face, "eyes": cfg.min_eyes, "other": cfg.min_other}
        face_area = region.sum()
        mask = np.zeros((size, size), bool)
        classes = set()
        for i in range(1, count):
            where = _region_class(centroids[i][1] / size * 112)
            if stats[i, cv2.CC_STAT_AREA] < minimum[where] * face_area or _inside_feature_zone(stats[i], size):
                continue
            mask |= labels == i
            classes.add(where)
        return occlusion_from_mask(mask, tuple(sorted(classes)))


def _skin_model(ycrcb: np.ndarray, size: int):
    """((median Y, Cr, Cb), (robust std Cr, Cb)) of the skin patches."""
    s = size / 112.0
    samples = np.concatenate(
        [ycrcb[round(y1 * s) : round(y2 * s), round(x1 * s) : round(x2 * s)].reshape(-1, 3)
         for x1, y1, x2, y2 in _SKIN_PATCHES_112]
    )
    cr, cb = samples[:, 1], samples[:, 2]
    skin = samples[(cr >= _GENERIC_SKIN_CR[0]) & (cr <= _GENERIC_SKIN_CR[1])
                   & (cb >= _GENERIC_SKIN_CB[0]) & (cb <= _GENERIC_SKIN_CB[1])]
    if len(skin) < 0.2 * len(samples):
        # Grey or strongly tinted footage (IR cameras): trust the patches themselves.
        skin = samples
    median = np.median(skin, axis=0)
    # MAD -> std, floored so a very uniform patch does not make every shade an "occluder".
    spread = np.maximum(1.4826 * np.median(np.abs(skin - median), axis=0), 3.0)
    return median, spread[1:]


def _inside_feature_zone(stat: np.ndarray, size: int) -> bool:
    x, y, w, h = (v * 112.0 / size for v in stat[:4])
    return any(x >= zx1 and y >= zy1 and x + w <= zx2 and y + h <= zy2 for zx1, zy1, zx2, zy2 in _FEATURE_ZONES_112)


def _region_class(centre_y_112: float) -> str:
    if centre_y_112 >= 66:  # below the nose tip line
        return "lower_face"
    if 36 <= centre_y_112 < 66:
        return "eyes"
    return "other"
