"""Where dlib's 5 points land under occluders, by dlib's own predictor and by a student of it (``streamer train
points``): the points the dlib student's chips are cut by.

    .venv/bin/python benchmarks/points_under_occluders.py [--points FILE ...] [--photos 600] [--config CFG]
        [--crop-size 112]

faces_eval photos (never trained on) are aligned by the config's detector (default: the offline default's), then
composed as ``streamer eval identity`` composes its probes (every occluder class, camera faults) and aligned again
by the detector on the probe, as the stream aligns what the camera sees. In each probe crop each predictor's points
are taken back to the photo's crop and compared with where dlib's predictor puts them on the photo's crop clean (what
the gallery's chip is cut by): median, 90th percentile and share beyond 0.15 of the eye distance, and the time
per face. Without ``--points``: the shipped student (``embed/weights/dlib-points-student.dat``). ``--crop-size``: the
stream's pipeline.crop_size (crops over 168 px are shrunk to 168 first, as the embedder shrinks them).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from engines import Device
from streamer.config import Config, load_config
from streamer.datagen.occluders import OccluderLibrary
from streamer.detect import align_most_confident, build_detector
from streamer.embed.dlib_resnet import SHIPPED_POINTS, WORK_PX, crop_points, student_points
from streamer.errors import ModelError
from streamer.eval.identity import CONDITIONS, list_people, probe_sample
from streamer.train.points import points_error, teacher_predictor

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def probes(detector, photos: list[Path], library: OccluderLibrary, size: int):
    """The photos' aligned crops, and per condition (photo index, probe crop, the probe crop's matrix from the
    photo's crop) for each probe the detector found again."""
    crops, points = [], []
    for path in photos:
        found = align_most_confident(detector, cv2.imread(str(path)), size)
        if found is not None:
            crops.append(found[0].image)
            points.append(found[1])
    by_condition = {}
    for condition in CONDITIONS:
        rows = []
        for k, (crop, pts) in enumerate(zip(crops, points)):
            sample = probe_sample(crop, pts, condition, k, library, seed=0)  # as streamer eval identity draws them
            again = align_most_confident(detector, sample.occluded, size)
            if again is not None:
                rows.append((k, again[0].image, again[0].matrix))
        by_condition[condition] = rows
    return crops, by_condition


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", nargs="+", default=[str(SHIPPED_POINTS)], help="students of dlib's predictor")
    parser.add_argument("--photos", type=int, default=600)
    parser.add_argument("--config", help="the detector's config (default: the offline default)")
    parser.add_argument("--crop-size", type=int, default=112, help="aligned crop side, as pipeline.crop_size")
    parser.add_argument("--faces", default=str(SHARED / "data" / "faces_eval" / "celeba_identity_160"))
    parser.add_argument("--occluders", default=str(SHARED / "data" / "occluders"))
    args = parser.parse_args()
    config = load_config(args.config) if args.config else Config()
    detector = build_detector(config.detector, Device("cpu"))
    dlib, teacher = teacher_predictor()
    try:
        predictors = {"dlib": teacher} | {p: student_points(dlib, Path(p), "--points") for p in args.points}
    except ModelError as exc:
        parser.error(str(exc))
    photos = [p for paths in list_people(Path(args.faces)).values() for p in paths][:args.photos]
    print(f"detector: {detector.description}\n{len(photos)} photos of {args.faces}")
    crops, by_condition = probes(detector, photos, OccluderLibrary(Path(args.occluders)), args.crop_size)
    work = min(args.crop_size, WORK_PX)  # the side the embedder measures the points at
    shrink = work / args.crop_size

    def rgb(image: np.ndarray) -> np.ndarray:
        if image.shape[0] != work:
            image = cv2.resize(image, (work, work), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))

    references = [crop_points(dlib, teacher, rgb(crop), work) / shrink for crop in crops]
    print(f"\n{len(crops)} photos aligned; per probe, the mean distance of the 5 points from dlib's on the photo "
          "clean, in eye distances: median / 90th percentile / share beyond 0.15\n")
    print("| condition | found again | " + " | ".join(predictors) + " |")
    print("|---" * (2 + len(predictors)) + "|")
    seconds = dict.fromkeys(predictors, 0.0)
    for condition, rows in by_condition.items():
        cells = []
        for name, predictor in predictors.items():
            errors = []
            for k, image, matrix in rows:
                started = time.perf_counter()
                found = crop_points(dlib, predictor, rgb(image), work) / shrink
                seconds[name] += time.perf_counter() - started
                errors.append(points_error(found, references[k], matrix))
            e = np.asarray(errors)
            cells.append(f"{np.median(e):.3f} / {np.percentile(e, 90):.3f} / {(e > 0.15).mean():.2f}")
        print(f"| {condition} | {len(rows) / len(crops):.1%} | " + " | ".join(cells) + " |")
    faces = sum(len(rows) for rows in by_condition.values())
    print("\nms a face: " + ", ".join(f"{name} {1000 * s / faces:.2f}" for name, s in seconds.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
