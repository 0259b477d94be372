"""SCRFD face detector (insightface), from a configured .onnx file or model-pack folder."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from engines import Device
from streamer.config_base import ExistingPath, StrictModel
from streamer.errors import ModelError
from streamer.records import Detections

# A region's side in the mosaic, and the mosaics' layouts (columns, rows), come from short lists: with
# a fixed-shape session per input shape (insightface >= 2), about 10 MB each, a free choice of sizes
# would grow memory with every new shape for as long as the stream runs. 6 sizes x 5 layouts at most.
TILE_LADDER = (64, 96, 128, 192, 256, 384)
LAYOUTS = ((1, 1), (2, 1), (4, 1), (4, 2), (4, 4))  # the first that holds the regions; 16 at most
STRIDE = 32  # SCRFD's coarsest feature stride: a dynamic input's sides are multiples of it


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
        self._input_size = config.input_size
        self.description = f"SCRFD {path.name} @ {config.input_size}px on {device}"
        # A model exported with a fixed input size costs the same on a region as on the whole frame.
        height, width = self._model.session.get_inputs()[0].shape[2:4]
        self.supports_regions = not (isinstance(height, int) and isinstance(width, int))

    def detect(self, image: np.ndarray) -> Detections:
        # A dynamic input is fitted to the frame's aspect (640 x 384 for 16:9) rather than letterboxed into
        # a square: the same scale, 40% fewer pixels through the network.
        size = _fitted_input(image.shape, self._input_size) if self.supports_regions else None
        dets, kps = self._model.detect(image, input_size=size)
        return self._kept(dets, kps)

    def detect_regions(self, crops: list[np.ndarray], frame_shapes: list[tuple[int, ...]]) -> list[Detections]:
        """Every crop at the scale its frame's full detection would see it (so a region finds what the full
        frame finds, landmarks as precise), laid out side by side in mosaics of up to 4 x 4 regions of one
        size: one network call for a batch's regions instead of one each (a call has a fixed cost in
        Python and threads, and a small input keeps a network's later layers tiny)."""
        tiles = [_tile_px(crop.shape, shape, self._input_size) for crop, shape in zip(crops, frame_shapes)]
        found: list[Detections | None] = [None] * len(crops)
        per_mosaic = LAYOUTS[-1][0] * LAYOUTS[-1][1]
        for tile in sorted(set(tiles)):
            members = [k for k, t in enumerate(tiles) if t == tile]
            for start in range(0, len(members), per_mosaic):
                chunk = members[start:start + per_mosaic]
                for k, detections in zip(chunk, self._mosaic([crops[k] for k in chunk], tile)):
                    found[k] = detections
        return found

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
        scores, boxes, points = self._model.forward(mosaic, self._model.det_thresh)
        if not sum(len(s) for s in scores):
            return [Detections.empty() for _ in crops]
        dets = np.hstack([np.vstack(boxes), np.vstack(scores)]).astype(np.float32)
        points = np.vstack(points)
        order = np.argsort(-dets[:, 4], kind="stable")
        dets, points = dets[order], points[order]
        keep = self._model.nms(dets)
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

    def _kept(self, dets: np.ndarray, kps: np.ndarray | None) -> Detections:
        if len(dets) == 0 or kps is None:
            return Detections.empty()
        keep = (dets[:, 3] - dets[:, 1]) >= self._min_face
        return Detections(
            boxes=dets[keep, :4].astype(np.float32),
            scores=dets[keep, 4].astype(np.float32),
            landmarks=kps[keep].astype(np.float32),
        )


def _round_up(pixels: int) -> int:
    return -(-pixels // STRIDE) * STRIDE


def _tile_px(crop_shape: tuple[int, ...], frame_shape: tuple[int, ...], input_size: int) -> int:
    """A region's side in the mosaic: the first size of the ladder that holds its side at the frame's
    full-detection scale (a region larger than the last is scaled down to it)."""
    side = max(crop_shape[:2]) * input_size / max(frame_shape[:2])
    return next((tile for tile in TILE_LADDER if tile >= side), TILE_LADDER[-1])


def _fitted_input(shape: tuple[int, ...], longest: int) -> tuple[int, int]:
    """(width, height) of the network input: the longer side ``longest``, the other scaled with the
    frame and rounded up to the stride."""
    height, width = shape[:2]
    scale = longest / max(height, width)
    return _round_up(round(width * scale)), _round_up(round(height * scale))
