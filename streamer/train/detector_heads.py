"""What the student detector's training reads of its teacher, per detector family: the maps behind the graph's
outputs, the teacher's probability of a face at each anchor, how a canvas becomes the network's input, and how the
maps decode into faces (for validation).

- SCRFD (insightface): per stride a score, box-distance and keypoint-distance map, one or two anchors a cell.
- YuNet (OpenCV Zoo, MIT): per stride a class and an objectness map (the score is the geometric mean of their
  probabilities), a box (centre offset and log size, in strides) and 5 points (offsets, in strides), one prior a
  cell; fed BGR pixels as they are. The decoding is OpenCV's ``FaceDetectorYN``'s.

The maps are read where each output's layout operators (Transpose, Reshape, Flatten, Sigmoid) begin: logits, and
(N, C, H, W) whatever the export's flattening.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engines import Device
from streamer.detect.scrfd import (
    EXPECTED_SCRFD,
    INPUT_MEAN,
    INPUT_STD,
    ScrfdConfig,
    ScrfdLayout,
    decode_scrfd,
    nms,
    scrfd_layout,
)
from streamer.detect.yunet import TEACHER_THRESHOLD, YunetConfig
from streamer.errors import ConfigError, ModelError
from streamer.model_files import open_onnx_model

_LAYOUT_OPS = ("Transpose", "Reshape", "Flatten", "Sigmoid")
YUNET_STRIDES = (8, 16, 32)
YUNET_OUTPUTS = tuple(f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in YUNET_STRIDES)
EXPECTED = f"{EXPECTED_SCRFD}, or a YuNet face detector (outputs {', '.join(YUNET_OUTPUTS[::3])}, … per stride)"


@dataclass(frozen=True)
class HeadLevel:
    """One stride's maps, anchors apart: the score's logits (N, A, H, W) each, box (N, A, 4, H, W), points
    (N, A, 10, H, W)."""

    logits: list[torch.Tensor]
    box: torch.Tensor
    points: torch.Tensor


def scrfd_input(canvas: np.ndarray) -> torch.Tensor:
    """(C, C, 3) uint8 BGR -> (3, C, C) float32, as ScrfdDetector feeds the network (RGB, centred, scaled)."""
    rgb = np.ascontiguousarray(canvas[:, :, ::-1].transpose(2, 0, 1))
    return (torch.from_numpy(rgb).float() - INPUT_MEAN) / INPUT_STD


def yunet_input(canvas: np.ndarray) -> torch.Tensor:
    """(C, C, 3) uint8 BGR -> (3, C, C) float32, as OpenCV's FaceDetectorYN feeds the network (BGR, 0-255)."""
    return torch.from_numpy(np.ascontiguousarray(canvas.transpose(2, 0, 1))).float()


class TeacherHeads(ABC):
    backend: str  # the stream's detector.backend that loads the student
    threshold: float  # the stream's default score threshold: validation counts a face as found as it would
    nms_threshold: float
    strides: tuple[int, ...]

    def __init__(self, path: Path):
        self.names = _head_maps(path)

    @staticmethod
    @abstractmethod
    def to_input(canvas: np.ndarray) -> torch.Tensor: ...

    @abstractmethod
    def levels(self, maps: list[torch.Tensor]) -> list[HeadLevel]: ...

    @abstractmethod
    def probability(self, level: HeadLevel) -> torch.Tensor:
        """(N, A, H, W): the detector's score of a face at each anchor."""

    @abstractmethod
    def detect(self, maps: list[torch.Tensor], k: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Input k's faces at ``threshold`` after NMS: (n, 5) [x1, y1, x2, y2, score] and (n, 5, 2) points, in input
        pixels."""


class ScrfdHeads(TeacherHeads):
    backend = "scrfd"
    threshold = ScrfdConfig.model_fields["score_threshold"].default
    nms_threshold = ScrfdConfig.model_fields["nms_threshold"].default
    to_input = staticmethod(scrfd_input)

    def __init__(self, path: Path, layout: ScrfdLayout):
        super().__init__(path)
        self.layout, self.strides = layout, layout.strides

    def levels(self, maps):
        count, anchors = self.layout.levels, self.layout.anchors
        out = []
        for level in range(count):
            score, box, points = maps[level], maps[level + count], maps[level + 2 * count]
            out.append(HeadLevel([score], _per_anchor(box, anchors, 4), _per_anchor(points, anchors, 10)))
        return out

    def probability(self, level):
        return torch.sigmoid(level.logits[0])

    def detect(self, maps, k, size):
        dets, points = decode_scrfd(self.as_outputs(maps, k), self.layout, size, self.threshold)
        keep = nms(dets, self.nms_threshold)
        return dets[keep], points[keep]

    def as_outputs(self, maps: list[torch.Tensor], k: int) -> list[np.ndarray]:
        """Input k's head maps laid out as the graph's outputs for that input alone (what ``decode_scrfd`` reads):
        per map (cells x anchors, width), each cell's anchors consecutive; scores as probabilities."""
        out = []
        for index, m in enumerate(maps):
            value = m[k].permute(1, 2, 0).reshape(-1, m.shape[1] // self.layout.anchors)
            out.append((torch.sigmoid(value) if index < self.layout.levels else value).cpu().numpy())
        return out


class YunetHeads(TeacherHeads):
    backend = "yunet"
    threshold = TEACHER_THRESHOLD  # the teacher's: the student is validated at the threshold the teacher is used at
    nms_threshold = YunetConfig.model_fields["nms_threshold"].default
    strides = YUNET_STRIDES
    to_input = staticmethod(yunet_input)

    def levels(self, maps):
        count = len(self.strides)
        return [HeadLevel([maps[level], maps[level + count]], maps[level + 2 * count][:, None],
                          maps[level + 3 * count][:, None]) for level in range(count)]

    def probability(self, level):
        # OpenCV clamps each probability to [0, 1] and takes the square root of their product.
        return torch.sqrt(torch.sigmoid(level.logits[0]) * torch.sigmoid(level.logits[1]))

    def detect(self, maps, k, size):
        dets, points = [], []
        for level, stride in zip(self.levels([m[k:k + 1] for m in maps]), self.strides):
            score = self.probability(level)[0, 0].cpu().numpy()
            rows, columns = np.nonzero(score >= self.threshold)
            if not len(rows):
                continue
            box = level.box[0, 0].cpu().numpy()[:, rows, columns]  # (4, n)
            centre_x, centre_y = (columns + box[0]) * stride, (rows + box[1]) * stride
            width, height = np.exp(box[2]) * stride, np.exp(box[3]) * stride
            dets.append(np.column_stack([centre_x - width / 2, centre_y - height / 2, centre_x + width / 2,
                                         centre_y + height / 2, score[rows, columns]]))
            offsets = level.points[0, 0].cpu().numpy()[:, rows, columns].T.reshape(-1, 5, 2)
            points.append((offsets + np.stack([columns, rows], axis=1)[:, None, :]) * stride)
        if not dets:
            return np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)
        found, found_points = np.concatenate(dets).astype(np.float32), np.concatenate(points).astype(np.float32)
        order = np.argsort(-found[:, 4], kind="stable")
        found, found_points = found[order], found_points[order]
        keep = nms(found, self.nms_threshold)
        return found[keep], found_points[keep]


def teacher_heads(path: Path, canvas: int) -> TeacherHeads:
    """The teacher's heads; a one-line ConfigError if it is neither an SCRFD with the 5 points nor a YuNet, or if it
    was exported for one input size other than ``canvas``."""
    if not path.is_file():
        raise ConfigError(f"--teacher: not found: {path} ({EXPECTED})")
    try:
        engine = open_onnx_model(path, Device("cpu"), EXPECTED)
    except ModelError as exc:
        raise ConfigError(f"--teacher: {exc}") from None
    if tuple(output.name for output in engine.outputs) == YUNET_OUTPUTS:
        heads: TeacherHeads = YunetHeads(path)
    else:
        layout = scrfd_layout(engine)
        if layout is None or not layout.keypoints:
            raise ConfigError(f"--teacher: {path} is not {EXPECTED} (an SCRFD needs the 5 points: a *_kps / "
                              "*_bnkps export)")
        heads = ScrfdHeads(path, layout)
    if canvas % heads.strides[-1]:
        raise ConfigError(f"--canvas: {path} has strides up to {heads.strides[-1]} px; the canvas must be a multiple "
                          f"of it, got {canvas}")
    height, width = engine.inputs[0].shape[2:4]
    if height and width and (height, width) != (canvas, canvas):
        # Its graph holds sizes worked out for that input (the upsampling between strides): no other size runs.
        raise ConfigError(f"--canvas: {path} is exported for one input size, {width}x{height} px; "
                          + (f"pass --canvas {height}" if height == width else "only a square one can be trained"))
    return heads


def _head_maps(path: Path) -> list[str]:
    """The names of the (N, C, H, W) maps behind the graph's outputs, in the outputs' order."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}
    maps = []
    for output in graph.output:
        name = output.name
        while name in producer and producer[name].op_type in _LAYOUT_OPS:
            name = producer[name].input[0]
        maps.append(name)
    return maps


def _per_anchor(value: torch.Tensor, anchors: int, width: int) -> torch.Tensor:
    return value.view(value.shape[0], anchors, width, *value.shape[2:])
