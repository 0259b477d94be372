"""Occluder segmentation on aligned face crops: one interface, backends chosen by ``occlusion.backend``."""

from __future__ import annotations

from typing import Annotated, Protocol

from pydantic import Field

from engines import Device
from streamer.occlusion.color_anomaly import ColorAnomalyConfig, ColorAnomalySegmenter
from streamer.occlusion.region import face_region, occlusion_from_mask
from streamer.occlusion.yolo_seg import YoloSegConfig, YoloSegSegmenter, onnx_class_names
from streamer.records import AlignedCrop, Occlusion

__all__ = ["ColorAnomalyConfig", "OcclusionConfig", "OccluderSegmenter", "YoloSegConfig", "build_segmenter",
           "face_region", "occluder_class_names", "occlusion_from_mask"]


class OccluderSegmenter(Protocol):
    description: str
    class_names: tuple[str, ...]  # every class name ``segment`` can report, in the model's order

    def segment(self, crops: list[AlignedCrop]) -> list[Occlusion]:
        """One ``Occlusion`` per crop, masks in crop coordinates; the whole batch in one call."""
        ...


OcclusionConfig = Annotated[ColorAnomalyConfig | YoloSegConfig, Field(discriminator="backend")]

_BACKENDS = {"color_anomaly": ColorAnomalySegmenter, "yolo_seg": YoloSegSegmenter}


def build_segmenter(config: OcclusionConfig, device: Device) -> OccluderSegmenter:
    return _BACKENDS[config.backend](config, device)


def occluder_class_names(config: OcclusionConfig) -> tuple[str, ...] | None:
    """The class names the configured backend can report, without building it: a YOLO-seg .onnx's from its
    metadata alone, the colour anomaly's fixed regions; None for a .pt checkpoint (only unpickling it, which
    runs its code, would tell). Raises ModelError, naming the file, for an .onnx that is not a YOLO-seg export."""
    if isinstance(config, ColorAnomalyConfig):
        return ColorAnomalySegmenter.class_names
    if config.model.suffix.lower() == ".onnx":
        return onnx_class_names(config.model)
    return None
