"""Occluder instance segmentation with a YOLO-seg model (ultralytics' architecture).

The default model is the project's own (``weights/``, see its MODEL_CARD.md): nine occluder classes,
trained on the data engine's composed faces. Any other YOLO-seg model loads from a configured path.

An ``.onnx`` export runs on the project's engine layer (ONNX Runtime, or rebuilt in torch on a GPU) with
its own pre- and post-processing (what ultralytics' predictor does with ``retina_masks=True`` for a square
crop), so ultralytics is not imported, and on ONNX Runtime neither is torch. A ``.pt`` checkpoint is a
pickle only ultralytics can load, and runs through it.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np
from pydantic import Field, field_validator

from engines import Device
from engines.base import DeclaredModel
from streamer.config_base import ExistingPath, StrictModel
from streamer.errors import ModelError
from streamer.model_files import one_line, open_onnx_model, warm_up
from streamer.occlusion.gate import ClassGate, OccluderGate
from streamer.occlusion.lenses import named_by_lenses
from streamer.occlusion.region import in_frame
from streamer.records import AlignedCrop, OccluderInstance, Occlusion

DEFAULT_MODEL = Path(__file__).parent / "weights" / "occluders-yolo11n-seg.onnx"
EXPECTED = ("an ultralytics YOLO segmentation export (metadata task 'segment' and class 'names'; outputs "
            "(n, 4 + classes + masks, anchors) and (n, masks, H/4, W/4))")
# ultralytics' predict defaults (cfg/default.yaml and utils/nms.py), which the shipped model was validated with.
NMS_IOU = 0.7
MAX_DET = 300
MAX_NMS = 30000  # candidates NMS considers at most, the most confident
UNBOUNDED_BATCH = 256  # crops per call where the model's batch axis is dynamic


class YoloSegConfig(StrictModel):
    backend: Literal["yolo_seg"] = "yolo_seg"
    model: ExistingPath = Field(
        DEFAULT_MODEL, description="YOLO-seg .onnx export, or a .pt checkpoint (a pickle: only one you trust)"
    )
    imgsz: int = Field(160, ge=32, le=1280, multiple_of=32, description="network input size, px")
    confidence: float = Field(0.15, gt=0, lt=1, description="no occluder below this confidence is considered; each "
                              "class's gate (the model's .gate.json, else 0.25) may ask more")
    gate: dict[str, ClassGate] | None = Field(
        None, description="per class: {confidence, min_face_share, sure}, over the model's own <model>.gate.json; "
        "a class given here replaces that class's whole entry there (its sure tier too)"
    )
    see_through: list[str] | None = Field(
        None, description="classes the face is seen through (clear glasses): found, but they never replace real "
        "pixels; null: eyeglasses, where the model names them; []: every class may be inpainted, each past its gate"
    )

    @field_validator("model")
    @classmethod
    def _known_format(cls, path):
        if path.suffix.lower() not in (".pt", ".onnx"):
            raise ValueError(f"expected a .pt or .onnx YOLO-seg model, got {path.name}")
        return path


def class_names_from_metadata(metadata: dict[str, str], path: Path) -> tuple[str, ...]:
    """The class names of an ultralytics export, in class-index order, from its ONNX metadata (``task``
    must be "segment"; ``names`` is a Python dict literal {index: name})."""
    task, names = metadata.get("task"), metadata.get("names")
    if task is None or names is None:
        raise ModelError(f"{path} is not an ultralytics YOLO export (no 'task' and 'names' metadata); "
                         f"expected {EXPECTED}")
    if task != "segment":
        raise ModelError(f"{path} is a YOLO '{task}' model, expected a segmentation ('segment') model")
    try:
        parsed = ast.literal_eval(names)
    except (ValueError, SyntaxError):
        parsed = None
    if isinstance(parsed, (list, tuple)):
        parsed = dict(enumerate(parsed))
    if not isinstance(parsed, dict) or sorted(parsed) != list(range(len(parsed))) or not parsed:
        raise ModelError(f"{path}: its 'names' metadata is not a {{0: name, 1: name, ...}} dict: {names[:80]!r}")
    return tuple(str(parsed[k]) for k in range(len(parsed)))


def onnx_class_names(path: Path) -> tuple[str, ...]:
    """The class names of a YOLO-seg .onnx export, read from its metadata (a bare CPU session, no graph
    optimisation: model_files.onnx_header)."""
    from streamer.model_files import onnx_header

    try:
        _, metadata = onnx_header(path)
    except Exception as exc:  # protobuf's errors, an unreadable file
        raise ModelError(f"cannot read {path} ({type(exc).__name__}); expected {EXPECTED}") from None
    return class_names_from_metadata(metadata, path)


class _Runner(Protocol):
    class_names: tuple[str, ...]
    imgsz: int
    runtime: str  # what runs the network

    def predict(self, images: list[np.ndarray]) -> list[list[OccluderInstance]]:
        """Per (S, S, 3) uint8 BGR image: the occluders found above the configured confidence."""
        ...


class YoloSegSegmenter:
    def __init__(self, config: YoloSegConfig, device: Device):
        onnx_file = config.model.suffix.lower() == ".onnx"
        self._runner: _Runner = OnnxYoloSeg(config, device) if onnx_file else UltralyticsYoloSeg(config, device)
        self.class_names: tuple[str, ...] = self._runner.class_names
        self.gate = OccluderGate.for_model(config.model, config.gate, config.confidence, self.class_names,
                                           config.see_through)
        # Lenses judge the model's sunglasses only where it can name the other kind of glasses too.
        self._judge_lenses = {"sunglasses", "eyeglasses"} <= set(self.class_names)
        self.description = (f"YOLO-seg {config.model.name} @ {self._runner.imgsz}px on {self._runner.runtime}, "
                            f"{device}; {self.gate.describe()}")

    def instances(self, crops: list[AlignedCrop]) -> list[list[OccluderInstance]]:
        """Every occluder found on each crop inside the frame, glasses named by their lenses, before the gate
        (for measuring and choosing gates)."""
        found = self._runner.predict([c.image for c in crops]) if crops else []
        seen = [in_frame(instances, crop.outside) for instances, crop in zip(found, crops)]
        if self._judge_lenses:
            seen = [named_by_lenses(instances, crop.image, crop.outside) for instances, crop in zip(seen, crops)]
        return seen

    def segment(self, crops: list[AlignedCrop]) -> list[Occlusion]:
        return [self.gate.occlusion(found, crop.image.shape[0]) for found, crop in zip(self.instances(crops), crops)]


class OnnxYoloSeg:
    """A YOLO-seg ONNX export on ONNX Runtime, with the stream's session options."""

    def __init__(self, config: YoloSegConfig, device: Device):
        path = config.model
        self._engine = open_onnx_model(path, device, EXPECTED)
        self.runtime = self._engine.backend
        self.class_names = class_names_from_metadata(self._engine.metadata, path)
        _check_outputs(self._engine, path, len(self.class_names))
        self._input_name = self._engine.input_names[0]
        self._dtype = self._engine.inputs[0].dtype or np.dtype(np.float32)  # a half-precision export takes float16
        batch, _, height, width = self._engine.inputs[0].shape
        # An export with a fixed input size runs at that size only.
        self.imgsz = height if height and height == width else config.imgsz
        self._fixed_batch = batch
        self._confidence = config.confidence
        warm_up(path, lambda: self.predict([np.zeros((112, 112, 3), np.uint8)]))

    def predict(self, images: list[np.ndarray]) -> list[list[OccluderInstance]]:
        step = self._fixed_batch or UNBOUNDED_BATCH
        found = []
        for start in range(0, len(images), step):
            chunk = images[start:start + step]
            predictions, protos = self._run(network_input(chunk, self.imgsz))
            for image, prediction, proto in zip(chunk, predictions, protos):
                found.append(self._instances(prediction, proto, image.shape[0]))
        return found

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 3, imgsz, imgsz) -> predictions (n, 4 + nc + nm, anchors), prototypes (n, nm, mh, mw)."""
        n = len(batch)
        if self._fixed_batch and n < self._fixed_batch:  # a fixed batch axis takes only full batches
            batch = np.concatenate([batch, np.zeros((self._fixed_batch - n, *batch.shape[1:]), batch.dtype)])
        predictions, protos = self._engine.run({self._input_name: batch.astype(self._dtype, copy=False)})[:2]
        return predictions[:n].astype(np.float32, copy=False), protos[:n].astype(np.float32, copy=False)

    def _instances(self, prediction: np.ndarray, protos: np.ndarray, size: int) -> list[OccluderInstance]:
        """One image's (4 + nc + nm, anchors) prediction and (nm, mh, mw) prototypes -> its occluders, in
        (size, size) crop pixels."""
        boxes, scores, classes, coefficients = candidates(prediction, len(self.class_names), self._confidence)
        keep = nms_per_class(boxes, scores, classes, NMS_IOU)[:MAX_DET]
        if not len(keep):
            return []
        # Boxes from network pixels to the crop's (a square crop is resized, never padded), clipped to it.
        boxes = np.clip(boxes[keep] * (size / self.imgsz), 0, size)
        masks = instance_masks(coefficients[keep], protos, boxes, size)
        # ultralytics drops instances whose mask is empty inside their box
        return [OccluderInstance(self.class_names[c], float(score), mask)
                for c, score, mask in zip(classes[keep], scores[keep], masks) if mask.any()]


def _check_outputs(engine: DeclaredModel, path: Path, classes: int) -> None:
    """A ModelError unless the outputs are a YOLO-seg head's for ``classes`` classes."""
    outputs = engine.outputs
    shapes = [o.shape for o in outputs]
    if len(engine.inputs) != 1 or len(engine.inputs[0].shape) != 4 or len(outputs) < 2 \
            or len(shapes[0]) != 3 or len(shapes[1]) != 4 or not shapes[1][1]:
        inputs = [i.shape for i in engine.inputs]
        raise ModelError(f"{path} has inputs {inputs} and outputs {shapes}; expected {EXPECTED}")
    masks = shapes[1][1]
    if shapes[0][1] not in (None, 4 + classes + masks):
        raise ModelError(f"{path}: output0 has {shapes[0][1]} channels, expected 4 boxes + {classes} classes "
                         f"(its 'names') + {masks} mask coefficients")


def network_input(images: list[np.ndarray], imgsz: int) -> np.ndarray:
    """Square (S, S, 3) uint8 BGR images -> (n, 3, imgsz, imgsz) float32 RGB in [0, 1] (ultralytics'
    letterbox of a square image is a plain resize, bilinear)."""
    resized = np.stack([image if image.shape[0] == imgsz
                        else cv2.resize(image, (imgsz, imgsz), interpolation=cv2.INTER_LINEAR) for image in images])
    batch = np.empty((len(resized), 3, imgsz, imgsz), np.float32)
    for channel in range(3):  # a plane at a time: a strided BGR -> RGB transpose costs twice as much
        np.divide(resized[..., 2 - channel], np.float32(255.0), out=batch[:, channel], dtype=np.float32)
    return batch


def candidates(prediction: np.ndarray, classes: int, confidence: float):
    """(4 + nc + nm, anchors) -> one candidate per (anchor, class) whose score beats ``confidence``: (k, 4)
    float32 xyxy boxes, (k,) scores, (k,) int class indices, (k, nm) mask coefficients; at most MAX_NMS, best
    first. Every class an anchor scores above it, not only its best (ultralytics' multi_label): a dark face
    mask the model calls 0.5 scarf and 0.3 face mask is a face mask candidate too, and the gate decides. On the
    real masked photos' test split this found a face mask on 93.3% of faces under its re-chosen gate, against
    90.4% with one class per anchor (``streamer eval occlusion``, MODEL_CARD.md)."""
    class_scores = prediction[4:4 + classes]
    kinds, picked = np.nonzero(class_scores > confidence)
    scores = class_scores[kinds, picked]
    order = np.argsort(-scores, kind="stable")[:MAX_NMS]
    kinds, picked, scores = kinds[order], picked[order], scores[order]
    centre, half = prediction[:2, picked].T, prediction[2:4, picked].T / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    return boxes, scores, kinds, prediction[4 + classes:, picked].T


def nms_per_class(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Indices greedy NMS keeps within each class, by decreasing score (torchvision's semantics, as
    ultralytics' class-offset NMS: a box goes when its IoU with a kept box of its class exceeds ``iou``)."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        inter = (np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0)
                 * np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0))
        overlap = inter / (areas[i] + areas[rest] - inter)
        order = rest[(overlap <= iou) | (classes[rest] != classes[i])]
    return np.asarray(keep, np.intp)


def instance_masks(coefficients: np.ndarray, protos: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """(k, nm) coefficients, (nm, mh, mw) prototypes, (k, 4) xyxy boxes in crop pixels -> (k, size, size)
    bool masks: the logits upsampled bilinearly to the crop (ultralytics' retina masks), positive (sigmoid
    above 0.5), inside their box."""
    nm, mh, mw = protos.shape
    logits = (coefficients @ protos.reshape(nm, -1)).reshape(-1, mh, mw)
    # All instances in one resize, as the channels of one image (OpenCV takes up to 512; MAX_DET is 300).
    upsampled = cv2.resize(np.ascontiguousarray(logits.transpose(1, 2, 0)), (size, size),
                           interpolation=cv2.INTER_LINEAR)
    masks = upsampled.reshape(size, size, -1).transpose(2, 0, 1) > 0
    pixels = np.arange(size, dtype=np.float32)  # a pixel's index, against the boxes' float edges
    inside_x = (pixels >= boxes[:, 0:1]) & (pixels < boxes[:, 2:3])  # (k, size)
    inside_y = (pixels >= boxes[:, 1:2]) & (pixels < boxes[:, 3:4])
    return masks & inside_y[:, :, None] & inside_x[:, None, :]


class UltralyticsYoloSeg:
    """A .pt checkpoint through ultralytics' own predictor (imports torch and ultralytics)."""

    def __init__(self, config: YoloSegConfig, device: Device):
        from streamer.ultralytics_offline import load_yolo

        self._config = config
        self._device = device
        self.imgsz = config.imgsz
        self.runtime = "ultralytics"
        self._model = load_yolo(config.model, task="segment")
        if self._model.task != "segment":
            raise ModelError(f"{config.model} is a YOLO '{self._model.task}' model, expected a segmentation model")
        names = self._model.names
        self.class_names = tuple(str(names[k]) for k in sorted(names))
        try:  # ultralytics builds its predictor on the first call: now, not on the first frame
            self.predict([np.zeros((112, 112, 3), np.uint8)])
        except Exception as exc:
            raise ModelError(f"cannot run YOLO model {config.model} ({one_line(exc)})") from None

    def predict(self, images: list[np.ndarray]) -> list[list[OccluderInstance]]:
        results = self._model.predict(images, imgsz=self._config.imgsz, conf=self._config.confidence,
                                      device=self._device.torch, retina_masks=True, verbose=False)
        found = []
        for image, result in zip(images, results):
            size = image.shape[0]
            if result.masks is None or not len(result.masks):
                found.append([])
                continue
            masks = result.masks.data.cpu().numpy()[:, :size, :size] > 0.5
            found.append([OccluderInstance(self.class_names[int(c)], float(score), mask)
                          for c, score, mask in zip(result.boxes.cls.cpu().numpy(), result.boxes.conf.cpu().numpy(),
                                                    masks) if mask.any()])
        return found
