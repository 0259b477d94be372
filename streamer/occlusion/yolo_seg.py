"""Occluder instance segmentation with an ultralytics YOLO-seg model.

The default model is the project's own (``weights/``, see its MODEL_CARD.md): nine occluder classes,
trained on the data engine's composed faces. Any other YOLO-seg model loads from a configured path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from engines import Device
from streamer.config_base import ExistingPath, StrictModel
from streamer.errors import ModelError
from streamer.occlusion.region import occlusion_from_mask
from streamer.records import AlignedCrop, Occlusion

DEFAULT_MODEL = Path(__file__).parent / "weights" / "occluders-yolo11n-seg.onnx"


class YoloSegConfig(StrictModel):
    backend: Literal["yolo_seg"] = "yolo_seg"
    model: ExistingPath = Field(
        DEFAULT_MODEL, description="YOLO-seg .onnx export, or a .pt checkpoint (a pickle: only one you trust)"
    )
    imgsz: int = Field(160, ge=32, le=1280, multiple_of=32, description="network input size, px")
    confidence: float = Field(0.25, gt=0, lt=1)

    @field_validator("model")
    @classmethod
    def _known_format(cls, path):
        if path.suffix.lower() not in (".pt", ".onnx"):
            raise ValueError(f"expected a .pt or .onnx YOLO-seg model, got {path.name}")
        return path


class YoloSegSegmenter:
    def __init__(self, config: YoloSegConfig, device: Device):
        from streamer.ultralytics_offline import load_yolo

        self._config = config
        self._device = device
        self._model = load_yolo(config.model, task="segment")
        if getattr(self._model, "task", "segment") != "segment":
            raise ModelError(f"{config.model} is a YOLO '{self._model.task}' model, expected a segmentation model")
        self.description = f"YOLO-seg {config.model.name} @ {config.imgsz}px on {device}"
        # Warm up now, not on the first frame: ultralytics builds its predictor on the first call.
        self._predict([np.zeros((112, 112, 3), np.uint8)])
        if config.model.suffix.lower() == ".onnx" and not device.is_cuda:
            self._quiet_onnx_threads()

    def _quiet_onnx_threads(self) -> None:
        """ultralytics opens its ONNX Runtime session with default options, whose threads spin-wait
        after each run and take the CPU from every other stage; reopen it with the stream's options."""
        import onnxruntime as ort

        from engines.onnxruntime_engine import session_options

        backend = getattr(getattr(getattr(self._model, "predictor", None), "model", None), "backend", None)
        if isinstance(getattr(backend, "session", None), ort.InferenceSession):
            backend.session = ort.InferenceSession(str(self._config.model), session_options(self._device),
                                                   providers=["CPUExecutionProvider"])

    def _predict(self, images: list[np.ndarray]):
        return self._model.predict(
            images,
            imgsz=self._config.imgsz,
            conf=self._config.confidence,
            device=self._device.torch,
            retina_masks=True,  # masks at the crop's own resolution
            verbose=False,
        )

    def segment(self, crops: list[AlignedCrop]) -> list[Occlusion]:
        if not crops:
            return []
        results = self._predict([c.image for c in crops])
        occlusions = []
        for crop, result in zip(crops, results):
            size = crop.image.shape[0]
            mask = np.zeros((size, size), bool)
            classes: tuple[str, ...] = ()
            if result.masks is not None and len(result.masks):
                instance_masks = result.masks.data.cpu().numpy() > 0.5
                mask = instance_masks.any(axis=0)[:size, :size]
                names = result.names
                classes = tuple(sorted({names[int(c)] for c in result.boxes.cls.cpu().numpy()}))
            occlusions.append(occlusion_from_mask(mask, classes))
        return occlusions
