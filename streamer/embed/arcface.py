"""ArcFace-type ONNX embedder (insightface's ArcFaceONNX: buffalo_l's w600k_r50, MobileFaceNet, ...)."""

from __future__ import annotations

import hashlib
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from engines import Device
from streamer.config_base import ExistingPath, StrictModel
from streamer.detect.scrfd import load_insightface_model, resolve_model_file
from streamer.embed.vectors import l2_normalise


class ArcFaceConfig(StrictModel):
    backend: Literal["arcface"]
    model: ExistingPath = Field(description="ArcFace .onnx file, or an insightface model-pack folder (w600k_*.onnx)")


class ArcFaceEmbedder:
    def __init__(self, config: ArcFaceConfig, device: Device):
        path = resolve_model_file(config.model, "w600k_*.onnx")
        self._model = load_insightface_model(path, device, "ArcFaceONNX")
        self._size = int(self._model.input_size[0])
        batch_axis = self._model.session.get_inputs()[0].shape[0]
        # Some exports (the shared MobileFaceNet among them) fix the batch at 1: feed those one crop at a time.
        self._max_batch = batch_axis if isinstance(batch_axis, int) and batch_axis > 0 else 256
        # ArcFace-family cosines: same person typically 0.4-0.8, different people below 0.2.
        self.default_threshold = 0.35
        with open(path, "rb") as f:
            self.model_id = f"arcface:{path.stem}:{hashlib.sha256(f.read()).hexdigest()[:12]}"
        self.description = f"ArcFace {path.name} ({self._size}px) on {device}"

    def visible_dims(self, masks: np.ndarray) -> None:
        return None

    def embed(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, 0), np.float32)
        if crops.shape[1] != self._size:
            crops = np.stack([cv2.resize(c, (self._size, self._size), interpolation=cv2.INTER_AREA) for c in crops])
        step = self._max_batch
        features = [self._model.get_feat(list(crops[i : i + step])) for i in range(0, len(crops), step)]
        return l2_normalise(np.concatenate(features).astype(np.float32))
