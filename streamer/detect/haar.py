"""The offline default detector: OpenCV's bundled Haar cascades, no weights to download.

Frontal-face detections are joined by faces inferred from eye pairs, because
the face cascade misses most faces whose lower half is covered (0 of 100 real
masked faces in ../shared/data/masked_faces/with_mask) while their eyes stay
visible. Landmarks come from the detected eyes where found, otherwise from
fixed proportions of the box, so they are estimates, not measurements.
Replace with SCRFD (``detector.backend: scrfd``) for real use.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from engines import Device
from streamer.align import box_from_landmarks, landmarks_from_box, landmarks_from_eyes
from streamer.config_base import StrictModel
from streamer.records import Detections
from streamer.track.iou import iou_matrix


class HaarConfig(StrictModel):
    backend: Literal["haar"] = "haar"
    min_face_px: int = Field(48, ge=20, description="smallest face box searched, px")
    scale_factor: float = Field(1.1, gt=1.0, le=1.5)
    min_neighbors: int = Field(4, ge=1, le=20)
    eye_min_neighbors: int = Field(5, ge=1, le=20)
    eye_pairs: bool = Field(True, description="also infer faces from eye pairs (finds faces wearing masks)")
    max_side: int = Field(960, ge=160, le=4096, description="frames are downscaled to this long side to search")


class HaarDetector:
    def __init__(self, config: HaarConfig, device: Device):
        self._config = config
        self._face = _cascade("haarcascade_frontalface_alt2.xml")
        self._eye = _cascade("haarcascade_eye.xml")
        self.description = "OpenCV Haar face + eye-pair cascades (classical, bundled with OpenCV; CPU)"
        # Not on regions: the eye pair that gives the landmarks depends on the window searched, and on the
        # demo's regions it aligned faces differently enough to lose a borderline name (LBP matching).
        self.supports_regions = False

    def detect(self, image: np.ndarray) -> Detections:
        return self._scaled(image, min(1.0, self._config.max_side / max(image.shape[:2])))

    def detect_regions(self, crops: list[np.ndarray], frame_shapes: list[tuple[int, ...]]) -> list[Detections]:
        # At the scale the full frame is searched at, so a face is found as in the full frame.
        return [self._scaled(crop, min(1.0, self._config.max_side / max(shape[:2])))
                for crop, shape in zip(crops, frame_shapes)]

    def _scaled(self, image: np.ndarray, scale: float) -> Detections:
        if scale < 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        found = self._detect(image, max(int(self._config.min_face_px * scale), 20))
        if scale == 1.0 or len(found) == 0:
            return found
        return Detections(found.boxes / scale, found.scores, found.landmarks / scale)

    def _detect(self, image: np.ndarray, min_face: int) -> Detections:
        cfg = self._config
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        faces = self._face.detectMultiScale(gray, cfg.scale_factor, cfg.min_neighbors, minSize=(min_face, min_face))
        eye_px = max(min_face // 6, 6)
        eyes = (
            self._eye.detectMultiScale(gray, cfg.scale_factor, cfg.eye_min_neighbors, minSize=(eye_px, eye_px))
            if cfg.eye_pairs
            else []
        )
        eyes = np.asarray(eyes, np.float32).reshape(-1, 4)
        boxes, scores, points = [], [], []
        used = np.zeros(len(eyes), bool)
        for x, y, w, h in faces:
            box = np.array([x, y, x + w, y + h], np.float32)
            pair = _best_eye_pair(eyes, within=box, used=used)
            if pair is not None:
                used[list(pair)] = True
                points.append(_pair_landmarks(eyes, pair))
            else:
                points.append(landmarks_from_box(box))
            boxes.append(box)
            scores.append(0.9)
        if cfg.eye_pairs:
            while (pair := _best_eye_pair(eyes, within=None, used=used)) is not None:
                used[list(pair)] = True
                lm = _pair_landmarks(eyes, pair)
                box = box_from_landmarks(lm)
                if boxes and iou_matrix(box[None], np.stack(boxes)).max() > 0.3:
                    continue
                boxes.append(box)
                scores.append(0.6)
                points.append(lm)
        if not boxes:
            return Detections.empty()
        return Detections(np.stack(boxes), np.array(scores, np.float32), np.stack(points).astype(np.float32))


def _cascade(name: str) -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + name
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"OpenCV could not load its bundled cascade {path}")
    return cascade


def _best_eye_pair(eyes: np.ndarray, within: np.ndarray | None, used: np.ndarray) -> tuple[int, int] | None:
    """The most face-like pair of unused eye boxes: similar size, level, 1.4-3.2 eye widths apart.

    With ``within`` (a face box), both eyes must lie in its upper 60%.
    """
    best, best_cost = None, np.inf
    centres = eyes[:, :2] + eyes[:, 2:] / 2
    for i in range(len(eyes)):
        for j in range(len(eyes)):
            if i == j or used[i] or used[j] or centres[i, 0] >= centres[j, 0]:
                continue
            wi, wj = eyes[i, 2], eyes[j, 2]
            size = (wi + wj) / 2
            dx, dy = centres[j] - centres[i]
            if max(wi, wj) / min(wi, wj) > 1.5 or abs(dy) > 0.35 * dx or not 1.4 * size <= dx <= 3.2 * size:
                continue
            if within is not None:
                x1, y1, x2, y2 = within
                ok = all(x1 <= c[0] <= x2 and y1 <= c[1] <= y1 + 0.6 * (y2 - y1) for c in (centres[i], centres[j]))
                if not ok:
                    continue
            cost = abs(dx / size - 2.2) + abs(dy) / dx + abs(wi - wj) / size
            if cost < best_cost:
                best, best_cost = (i, j), cost
    return best


def _pair_landmarks(eyes: np.ndarray, pair: tuple[int, int]) -> np.ndarray:
    left, right = (eyes[k, :2] + eyes[k, 2:] / 2 for k in pair)
    return landmarks_from_eyes(left, right)
