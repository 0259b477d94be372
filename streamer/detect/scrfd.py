"""SCRFD face detector (insightface's weights), from a configured .onnx file or model-pack folder.

The network runs on the project's engine layer (one ONNX Runtime session per model, with the stream's
session options); the pre-processing, the decoding of its score / box / keypoint maps and the NMS are
insightface's ``SCRFD.detect``, re-implemented here so that nothing of insightface is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from engines import Device
from engines.base import DeclaredModel
from streamer.config_base import ExistingPath, StrictModel
from streamer.errors import ModelError
from streamer.model_files import fingerprint, open_onnx_model, resolve_model_file, warm_up
from streamer.records import Detections

# A region's side in the mosaic, and the mosaics' layouts (columns, rows), come from short lists: every
# new input shape costs ONNX Runtime a little planning and memory in its arena, so a free choice of sizes
# would keep growing it for as long as the stream runs. 6 sizes x 5 layouts at most.
TILE_LADDER = (64, 96, 128, 192, 256, 384)
LAYOUTS = ((1, 1), (2, 1), (4, 1), (4, 2), (4, 4))  # the first that holds the regions; 16 at most
STRIDE = 32  # SCRFD's coarsest feature stride: a dynamic input's sides are multiples of it
INPUT_MEAN, INPUT_STD = 127.5, 128.0  # insightface's SCRFD normalisation


class ScrfdConfig(StrictModel):
    backend: Literal["scrfd"]
    model: ExistingPath = Field(description="SCRFD .onnx file, or an insightface model-pack folder (det_*.onnx)")
    input_size: int = Field(640, ge=128, le=1920, multiple_of=32, description="square network input, px")
    score_threshold: float = Field(0.5, gt=0, lt=1)
    nms_threshold: float = Field(0.4, gt=0, lt=1)
    min_face_px: int = Field(20, ge=8, description="smaller faces are ignored (box height, px)")
    # A photo cropped tight to the face, blown up to the input, shows SCRFD a face of 300-500 px, which it finds
    # less often, worse still under an occluder (benchmarks/detector_threshold.py --max-upscale).
    max_upscale: float = Field(1.5, ge=1.0, description="an image smaller than input_size is enlarged this much (a "
                               "dynamic input's sides then rounded up to 32 px, which it fills)")


@dataclass(frozen=True)
class ScrfdLayout:
    """How an SCRFD export lays out its outputs: for each stride a score map, then a box map, then
    (with keypoints) a keypoint map, each (cells x anchors, 1 | 4 | 10), optionally with a batch axis."""

    strides: tuple[int, ...]
    anchors: int  # anchor centres per feature-map cell
    keypoints: bool

    @property
    def levels(self) -> int:
        return len(self.strides)


# insightface tells the variants apart by their number of outputs, and so does this.
SCRFD_LAYOUTS = {
    6: ScrfdLayout((8, 16, 32), 2, False),
    9: ScrfdLayout((8, 16, 32), 2, True),
    10: ScrfdLayout((8, 16, 32, 64, 128), 1, False),
    15: ScrfdLayout((8, 16, 32, 64, 128), 1, True),
}
_OUTPUT_WIDTHS = (1, 4, 10)  # score, box distances, keypoint distances
EXPECTED_SCRFD = "an SCRFD face detector (one (1, 3, H, W) input; 6, 9, 10 or 15 score/box/keypoint outputs)"


def scrfd_layout(engine: DeclaredModel) -> ScrfdLayout | None:
    """The layout of ``engine``'s outputs if they are an SCRFD model's, else None."""
    layout = SCRFD_LAYOUTS.get(len(engine.outputs))
    if layout is None or len(engine.inputs) != 1 or len(engine.inputs[0].shape) != 4:
        return None
    if engine.inputs[0].shape[1] not in (3, None):
        return None
    for index, output in enumerate(engine.outputs):
        width = _OUTPUT_WIDTHS[index // layout.levels]
        if len(output.shape) not in (2, 3) or output.shape[-1] not in (width, None):
            return None
    return layout


@lru_cache(maxsize=64)
def anchor_centres(rows: int, columns: int, stride: int, anchors: int) -> np.ndarray:
    """(rows * columns * anchors, 2) float32 (x, y) input pixels of a feature map's anchors, row-major,
    each cell's anchors consecutive (insightface's order)."""
    centres = np.stack(np.mgrid[:rows, :columns][::-1], axis=-1).astype(np.float32)
    centres = (centres * stride).reshape(-1, 2)
    if anchors > 1:
        centres = np.repeat(centres, anchors, axis=0)
    centres.flags.writeable = False
    return centres


def decode_scrfd(outputs: list[np.ndarray], layout: ScrfdLayout, input_hw: tuple[int, int],
                 threshold: float) -> tuple[np.ndarray, np.ndarray | None]:
    """The candidates whose score reaches ``threshold``, most confident first (a stable order).

    ``outputs``: the network's outputs for one (1, 3, H, W) input, ``input_hw`` = (H, W). Returns
    (n, 5) float32 [x1, y1, x2, y2, score] and (n, 5, 2) float32 keypoints (None without keypoints),
    in input pixels. Only the candidates are decoded: the rest of the maps' anchors are never touched.
    """
    height, width = input_hw
    levels = layout.levels
    dets, points = [], []
    for level, stride in enumerate(layout.strides):
        scores = outputs[level].reshape(-1)
        picked = np.flatnonzero(scores >= threshold)
        if not len(picked):
            continue
        centres = anchor_centres(height // stride, width // stride, stride, layout.anchors)[picked]
        distance = outputs[level + levels].reshape(-1, 4)[picked] * stride
        dets.append(np.column_stack([centres - distance[:, :2], centres + distance[:, 2:], scores[picked]]))
        if layout.keypoints:
            offsets = outputs[level + 2 * levels].reshape(-1, 10)[picked] * stride
            points.append(centres[:, None, :] + offsets.reshape(-1, 5, 2))
    if not dets:
        return np.zeros((0, 5), np.float32), (np.zeros((0, 5, 2), np.float32) if layout.keypoints else None)
    found = np.concatenate(dets).astype(np.float32, copy=False)
    order = np.argsort(-found[:, 4], kind="stable")
    return found[order], (np.concatenate(points)[order] if layout.keypoints else None)


def nms(dets: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of the boxes greedy NMS keeps, in ``dets``' order of decreasing score.

    ``dets``: (n, 5) [x1, y1, x2, y2, score]. insightface's variant: areas count the end pixel (+1),
    a box is dropped when its overlap with a kept one exceeds ``threshold``.
    """
    x1, y1, x2, y2, scores = dets.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        width = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        height = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = width * height
        order = rest[inter / (areas[i] + areas[rest] - inter) <= threshold]
    return np.asarray(keep, np.intp)


def letterboxed(image: np.ndarray, size: tuple[int, int],
                max_upscale: float = float("inf")) -> tuple[np.ndarray, float]:
    """``image`` resized into a (height, width) = ``size`` black canvas keeping its aspect, top-left placed
    (insightface's SCRFD.detect), enlarged ``max_upscale`` times at most; and the scale from image to canvas
    pixels."""
    canvas_h, canvas_w = size
    ratio = image.shape[0] / image.shape[1]
    if ratio > canvas_h / canvas_w:
        new_h = canvas_h
        new_w = int(new_h / ratio)
    else:
        new_w = canvas_w
        new_h = int(new_w * ratio)
    if new_h > image.shape[0] * max_upscale:
        new_h, new_w = int(image.shape[0] * max_upscale), int(image.shape[1] * max_upscale)
    canvas = np.zeros((canvas_h, canvas_w, 3), np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h))
    return canvas, new_h / image.shape[0]


class ScrfdDetector:
    def __init__(self, config: ScrfdConfig, device: Device):
        path = resolve_model_file(config.model, "det_*.onnx")
        self._engine = open_onnx_model(path, device, EXPECTED_SCRFD)
        layout = scrfd_layout(self._engine)
        if layout is None:
            shapes = ", ".join(str(o.shape) for o in self._engine.outputs)
            raise ModelError(f"{path} is not {EXPECTED_SCRFD}: it has outputs {shapes}")
        if not layout.keypoints:
            raise ModelError(f"{path} is an SCRFD model without the 5 landmarks the faces are aligned on: "
                             f"use a keypoint (*_kps / *_bnkps) export")
        self._layout = layout
        self._input_name = self._engine.input_names[0]
        self._score_threshold = config.score_threshold
        self._nms_threshold = config.nms_threshold
        self._min_face = config.min_face_px
        self._input_size = config.input_size
        self._max_upscale = config.max_upscale
        height, width = self._engine.inputs[0].shape[2:4]
        # A model exported with a fixed input size costs the same on a region as on the whole frame.
        self._fixed_hw = (height, width) if height and width else None
        self.supports_regions = self._fixed_hw is None
        shown = (f"{width}x{height}px (fixed)" if self._fixed_hw else f"{config.input_size}px") + \
            f", small images enlarged {config.max_upscale:g}x (to the next 32 px)"
        self.description = f"SCRFD {path.name} ({fingerprint(path)}) @ {shown} on {self._engine.backend}, {device}"
        warm_up(path, lambda: self.detect(np.zeros((config.input_size, config.input_size, 3), np.uint8)))

    def detect(self, image: np.ndarray) -> Detections:
        # A dynamic input is fitted to the frame's aspect (640 x 384 for 16:9) rather than letterboxed into
        # a square: the same scale, 40% fewer pixels through the network.
        # A small image is enlarged max_upscale times: into a fixed input's corner, or into a dynamic input fitted
        # to it, whose sides are rounded up to the stride and which it fills, as insightface fills it (a 112 px photo
        # is shown at 192 px: 1.7 times).
        if self._fixed_hw:
            canvas, scale = letterboxed(image, self._fixed_hw, self._max_upscale)
        else:
            width, height = _fitted_input(image.shape, self._input_size, self._max_upscale)
            canvas, scale = letterboxed(image, (height, width))
        dets, points = self._candidates(canvas)
        keep = nms(dets, self._nms_threshold)
        return self._kept(np.hstack([dets[keep, :4] / scale, dets[keep, 4:]]), points[keep] / scale)

    def detect_regions(self, crops: list[np.ndarray], frame_shapes: list[tuple[int, ...]]) -> list[Detections]:
        """Every crop at the scale its frame's full detection would see it (so a region finds what the full
        frame finds, landmarks as precise), laid out side by side in mosaics of up to 4 x 4 regions of one
        size: one network call for a batch's regions instead of one each (a call has a fixed cost in
        Python and threads, and a small input keeps a network's later layers tiny)."""
        tiles = [_tile_px(crop.shape, shape, self._input_size, self._max_upscale)
                 for crop, shape in zip(crops, frame_shapes)]
        found: list[Detections | None] = [None] * len(crops)
        per_mosaic = LAYOUTS[-1][0] * LAYOUTS[-1][1]
        for tile in sorted(set(tiles)):
            members = [k for k, t in enumerate(tiles) if t == tile]
            for start in range(0, len(members), per_mosaic):
                chunk = members[start:start + per_mosaic]
                for k, detections in zip(chunk, self._mosaic([crops[k] for k in chunk], tile)):
                    found[k] = detections
        return found

    def _candidates(self, canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The network on one (H, W, 3) uint8 BGR canvas: (n, 5) candidates, most confident first, and
        their (n, 5, 2) keypoints, in canvas pixels."""
        height, width = canvas.shape[:2]
        blob = cv2.dnn.blobFromImage(canvas, 1.0 / INPUT_STD, (width, height), (INPUT_MEAN,) * 3, swapRB=True)
        outputs = self._engine.run({self._input_name: blob})
        return decode_scrfd(outputs, self._layout, (height, width), self._score_threshold)

    def _mosaic(self, crops: list[np.ndarray], tile: int) -> list[Detections]:
        columns, rows = next(layout for layout in LAYOUTS if layout[0] * layout[1] >= len(crops))
        mosaic = np.zeros((rows * tile, columns * tile, 3), np.uint8)
        origins, scales = np.zeros((len(crops), 2), np.float32), np.zeros(len(crops), np.float32)
        for k, crop in enumerate(crops):
            scale = tile / max(crop.shape[:2])
            fitted = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))))
            top, left = (k // columns) * tile, (k % columns) * tile
            mosaic[top:top + fitted.shape[0], left:left + fitted.shape[1]] = fitted
            origins[k], scales[k] = (left, top), scale
        dets, points = self._candidates(mosaic)
        if not len(dets):
            return [Detections.empty() for _ in crops]
        keep = nms(dets, self._nms_threshold)
        dets, points = dets[keep], points[keep]
        # A face belongs to the region its centre lies in (regions touch: a face is about 60% of its
        # region's side and centred in it, so none reaches far into a neighbour).
        column, row = (((dets[:, :2] + dets[:, 2:4]) / 2) // tile).astype(int).T
        tile_of = np.where(column < columns, row * columns + column, -1)
        found = []
        for k in range(len(crops)):
            mine = tile_of == k
            offset, scale = origins[k], scales[k]
            found.append(self._kept(
                np.hstack([(dets[mine, :4] - np.tile(offset, 2)) / scale, dets[mine, 4:5]]),
                (points[mine] - offset) / scale))
        return found

    def _kept(self, dets: np.ndarray, kps: np.ndarray) -> Detections:
        """``dets`` (n, 5) and ``kps`` (n, 5, 2) in image pixels, less the faces under min_face_px."""
        if len(dets) == 0:
            return Detections.empty()
        keep = (dets[:, 3] - dets[:, 1]) >= self._min_face
        return Detections(
            boxes=dets[keep, :4].astype(np.float32),
            scores=dets[keep, 4].astype(np.float32),
            landmarks=kps[keep].astype(np.float32),
        )


def _round_up(pixels: int) -> int:
    return -(-pixels // STRIDE) * STRIDE


def _tile_px(crop_shape: tuple[int, ...], frame_shape: tuple[int, ...], input_size: int, max_upscale: float) -> int:
    """A region's side in the mosaic: the first size of the ladder that holds its side at the frame's
    full-detection scale (a region larger than the last is scaled down to it)."""
    side = max(crop_shape[:2]) * _scale(frame_shape, input_size, max_upscale)
    return next((tile for tile in TILE_LADDER if tile >= side), TILE_LADDER[-1])


def _scale(shape: tuple[int, ...], longest: int, max_upscale: float) -> float:
    """Image to network input: the longer side to ``longest``, a small image enlarged ``max_upscale`` times
    at most."""
    return min(longest / max(shape[:2]), max_upscale)


def _fitted_input(shape: tuple[int, ...], longest: int, max_upscale: float) -> tuple[int, int]:
    """(width, height) of the network input: the image at ``_scale``, each side rounded up to the stride
    (the letterbox keeps the image's aspect inside it)."""
    height, width = shape[:2]
    scale = _scale(shape, longest, max_upscale)
    return _round_up(round(width * scale)), _round_up(round(height * scale))
