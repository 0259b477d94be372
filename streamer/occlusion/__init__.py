"""Occluder segmentation on aligned face crops: one interface, backends chosen by ``occlusion.backend``."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Protocol

import cv2
import numpy as np
from pydantic import Field

from engines import Device
from streamer.records import AlignedCrop, Occlusion


class OccluderSegmenter(Protocol):
    description: str

    def segment(self, crops: list[AlignedCrop]) -> list[Occlusion]:
        """One ``Occlusion`` per crop, masks in crop coordinates; the whole batch in one call."""
        ...


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
    region = face_region(mask.shape[0])
    mask = mask & region
    fraction = float(mask.sum() / region.sum())
    return Occlusion(mask=mask, classes=classes if mask.any() else (), fraction=fraction)


from streamer.occlusion.color_anomaly import ColorAnomalyConfig, ColorAnomalySegmenter  # noqa: E402
from streamer.occlusion.yolo_seg import YoloSegConfig, YoloSegSegmenter  # noqa: E402

OcclusionConfig = Annotated[ColorAnomalyConfig | YoloSegConfig, Field(discriminator="backend")]

_BACKENDS = {"color_anomaly": ColorAnomalySegmenter, "yolo_seg": YoloSegSegmenter}


def build_segmenter(config: OcclusionConfig, device: Device) -> OccluderSegmenter:
    return _BACKENDS[config.backend](config, device)
