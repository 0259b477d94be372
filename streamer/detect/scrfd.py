"""SCRFD face detector (insightface), from a configured .onnx file or model-pack folder."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from engines import Device
from streamer.config_base import ExistingPath, StrictModel
from streamer.errors import ModelError
from streamer.records import Detections

REGION_PX = 128  # network input for a region around a followed face: the face spans about 80 px


class ScrfdConfig(StrictModel):
    backend: Literal["scrfd"]
    model: ExistingPath = Field(description="SCRFD .onnx file, or an insightface model-pack folder (det_*.onnx)")
    input_size: int = Field(640, ge=128, le=1920, multiple_of=32, description="square network input, px")
    score_threshold: float = Field(0.5, gt=0, lt=1)
    nms_threshold: float = Field(0.4, gt=0, lt=1)
    min_face_px: int = Field(20, ge=8, description="smaller faces are ignored (box height, px)")


def resolve_model_file(path: Path, pattern: str) -> Path:
    """``path`` itself if a file, else the single file matching ``pattern`` inside the folder."""
    if path.is_file():
        return path
    matches = sorted(path.glob(pattern))
    if not matches:
        raise ModelError(f"no {pattern} file in model folder {path}")
    return matches[0]


def load_insightface_model(path: Path, device: Device, expected: str):
    """Loads an ONNX model through insightface's model_zoo and checks its kind (SCRFD, ArcFaceONNX)."""
    from insightface.model_zoo import get_model

    from engines.onnxruntime_engine import ort_providers, session_options

    try:
        model = get_model(str(path), providers=ort_providers(device), sess_options=session_options(device))
    except Exception as exc:
        raise ModelError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None
    if model is None or type(model).__name__ != expected:
        found = "an unrecognised model" if model is None else type(model).__name__
        raise ModelError(f"{path} is {found}, expected an insightface {expected} model")
    return model


class ScrfdDetector:
    def __init__(self, config: ScrfdConfig, device: Device):
        path = resolve_model_file(config.model, "det_*.onnx")
        self._model = load_insightface_model(path, device, "SCRFD")
        self._model.prepare(
            ctx_id=0 if device.is_cuda else -1,
            input_size=(config.input_size, config.input_size),
            det_thresh=config.score_threshold,
            nms_thresh=config.nms_threshold,
        )
        self._min_face = config.min_face_px
        self.description = f"SCRFD {path.name} @ {config.input_size}px on {device}"
        # A model exported with a fixed input size costs the same on a region as on the whole frame.
        height, width = self._model.session.get_inputs()[0].shape[2:4]
        self.supports_regions = not (isinstance(height, int) and isinstance(width, int))

    def detect(self, image: np.ndarray, input_size: int | None = None) -> Detections:
        size = (input_size, input_size) if input_size else None
        dets, kps = self._model.detect(image, input_size=size)
        if len(dets) == 0 or kps is None:
            return Detections.empty()
        keep = (dets[:, 3] - dets[:, 1]) >= self._min_face
        return Detections(
            boxes=dets[keep, :4].astype(np.float32),
            scores=dets[keep, 4].astype(np.float32),
            landmarks=kps[keep].astype(np.float32),
        )

    def detect_region(self, image: np.ndarray, frame_shape: tuple[int, ...]) -> Detections:
        return self.detect(image, REGION_PX)
