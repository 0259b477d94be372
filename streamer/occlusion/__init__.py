"""Occluder segmentation on aligned face crops: one interface, backends chosen by ``occlusion.backend``."""

from __future__ import annotations

from typing import Annotated, Protocol

from pydantic import Field

from engines import Device
from streamer.occlusion.color_anomaly import ColorAnomalyConfig, ColorAnomalySegmenter
from streamer.occlusion.region import face_region, occlusion_from_mask
from streamer.occlusion.yolo_seg import YoloSegConfig, YoloSegSegmenter
from streamer.records import AlignedCrop, Occlusion

__all__ = ["ColorAnomalyConfig", "OcclusionConfig", "OccluderSegmenter", "YoloSegConfig", "build_segmenter",
           "face_region", "occlusion_from_mask"]


class OccluderSegmenter(Protocol):
    description: str

    def segment(self, crops: list[AlignedCrop]) -> list[Occlusion]:
        """One ``Occlusion`` per crop, masks in crop coordinates; the whole batch in one call."""
        ...


OcclusionConfig = Annotated[ColorAnomalyConfig | YoloSegConfig, Field(discriminator="backend")]

_BACKENDS = {"color_anomaly": ColorAnomalySegmenter, "yolo_seg": YoloSegSegmenter}


def build_segmenter(config: OcclusionConfig, device: Device) -> OccluderSegmenter:
    return _BACKENDS[config.backend](config, device)
