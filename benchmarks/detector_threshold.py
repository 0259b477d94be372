"""A detector's score threshold (SCRFD's, YuNet's): faces found again under occluders, against false faces where
there is none.

    .venv/bin/python benchmarks/detector_threshold.py [--backend scrfd|yunet] [--model NAME|PATH] [--input-size 640]
        [--max-upscale 1.5] [--photos 600] [--probes 500] [--cache DIR] [--crops DIR]

A tenth of masked and hand-covered eval probes are not found again at the default threshold (0.5), and a
face not found is named for nobody. This measures, for each threshold of a sweep:
- recall on ../shared masked_faces/with_mask and without_mask (real photos, one face each mostly);
- faces found again on faces_eval probes composed as ``streamer eval identity`` composes them (clean, face
  mask, sunglasses, hand), with the landmark error of the faces found (median / 90th percentile, in eye
  distances from the clean photo's points): a lower threshold may find a face by landmarks too poor to use;
- false faces on portraits: faces found on CelebAMask-HQ's test photos (4500-4999; ``train detector
  --surroundings`` reads the train split only) whose centre is not on the labelled face: hair, clothes, what is
  behind (an unlabelled bystander counts too: compare with the teacher);
- false faces a frame on the overhead crowd video (no visible face) and extra faces a frame on the Intel
  indoor clip (real faces, and backs of heads; ``--crops DIR`` writes every face either clip gives from the
  lowest threshold up, its score in the file name, to look at).

Each photo is searched as ``detect_in_photo`` searches it: as it is, and, if nothing is found there, with
its border extended by half its size. NMS keeps a box only if no higher-scored box overlaps it, so the faces
kept at a threshold are those of one run at the lowest threshold whose score reaches it: one run serves the
whole sweep. ``--max-upscale`` and ``--input-size`` compare how far a small photo is enlarged (the eval's probes
are 112 px, the real photos 70-256 px; SCRFD only); ``--model`` takes a student of the detector (``streamer train
detector``). YuNet is swept over its own range of scores (0.9 to 0.4; 0.7 its default), with dlib's 5 points.
0.6 was the score a stream's track started from until 2026-12-04 (a face under it only kept a
track alive, and in a still was never reported); it is now ``pipeline.track_start_score``, 0.5.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import cv2
import numpy as np
from sampling import evenly  # benchmarks/sampling.py: run as a script, this folder is on the path

from engines import Device
from streamer.datagen.face_frame import FaceFrame
from streamer.datagen.labelled_faces import celeba_face_pixels, labelled_photos
from streamer.datagen.occluders import OccluderLibrary
from streamer.detect import FaceDetector
from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
from streamer.detect.yunet import YunetConfig, YunetDetector
from streamer.eval.identity import AlignmentCache, list_people, probe_sample

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data"
THRESHOLDS = {"scrfd": (0.6, 0.55, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25, 0.2),
              "yunet": (0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.5, 0.4)}
MODELS = {"scrfd": "scrfd_2.5g_bnkps.onnx", "yunet": "yunet_face_detection.onnx"}


def detector(backend: str, model: str, input_size: int, max_upscale: float) -> FaceDetector:
    """``model``: a file of ../shared/models by name, or any .onnx of the backend by path (a student of one)."""
    path = Path(model) if Path(model).is_file() else SHARED / "models" / model
    lowest = min(THRESHOLDS[backend])
    if backend == "yunet":
        return YunetDetector(YunetConfig(backend="yunet", model=path, score_threshold=lowest), Device("cpu"))
    return ScrfdDetector(ScrfdConfig(backend="scrfd", model=path, score_threshold=lowest, input_size=input_size,
                                     max_upscale=max_upscale), Device("cpu"))


def searched(found_by: FaceDetector, image: np.ndarray) -> tuple[float, np.ndarray | None, float, np.ndarray | None]:
    """The best score and its 5 points, as the photo is and with its border extended (points in the photo's
    pixels); score 0 where no face reaches the lowest threshold."""
    pad = max(image.shape[:2]) // 2
    out = []
    for border in (0, pad):
        shown = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_REPLICATE) if border else image
        found = found_by.detect(shown)
        if len(found):
            best = int(found.scores.argmax())
            out += [float(found.scores[best]), found.landmarks[best] - border]
        else:
            out += [0.0, None]
    return out[0], out[1], out[2], out[3]


def found_at(threshold: float, tight: float, padded: float) -> bool:
    return tight >= threshold or padded >= threshold


def points_at(threshold: float, tight: float, tight_points, padded: float, padded_points):
    """The points ``detect_in_photo`` would use at ``threshold``: the photo's own if found there."""
    if tight >= threshold:
        return tight_points
    return padded_points if padded >= threshold else None


def photo_recall(found_by: FaceDetector, paths: list[Path]) -> list[tuple[float, float]]:
    rows = []
    for path in paths:
        tight, _, padded, _ = searched(found_by, cv2.imread(str(path)))
        rows.append((tight, padded))
    return rows


def eval_probes(found_by: FaceDetector, count: int, cache_dir: Path | None) -> dict[str, list[tuple]]:
    """Per condition: (tight score, tight points, padded score, padded points, the photo's points, the probe)
    of each probe."""
    library = OccluderLibrary(DATA / "occluders")
    cache = AlignmentCache(cache_dir, found_by, 112)
    people = list_people(DATA / "faces_eval" / "celeba_identity_160")
    paths = evenly([p for photos in people.values() for p in photos[1:3]], count)
    photos = [a for a in (cache.align(p) for p in paths) if a is not None]
    cache.save()
    rows: dict[str, list[tuple]] = {}
    for condition in ("clean", "face_mask", "sunglasses", "hand"):
        rows[condition] = []
        for k, (crop, points, _) in enumerate(photos):
            sample = probe_sample(crop, points, condition, k, library, seed=0)  # as streamer eval identity draws them
            rows[condition].append((*searched(found_by, sample.occluded), points, sample.occluded))
    return rows


def portrait_false_faces(found_by: FaceDetector, count: int) -> list[np.ndarray]:
    """Per CelebAMask-HQ test photo: the scores of the faces found whose box centre is off the labelled face (none
    where the folder is not there, or ``count`` is 0)."""
    root = DATA / "faces_train" / "celebamaskhq_256"
    photos = [p for p in labelled_photos("celebamaskhq", root) if p.split == "test"] if count and root.is_dir() else []
    rows = []
    for photo in evenly(photos, count):
        image, face = cv2.imread(str(photo.image)), celeba_face_pixels(photo.labels)
        if image is None or face is None:
            continue
        found = found_by.detect(image)
        centres = ((found.boxes[:, :2] + found.boxes[:, 2:]) / 2).round().astype(int)
        height, width = face.shape
        on_face = [0 <= x < width and 0 <= y < height and face[y, x] for x, y in centres]
        rows.append(found.scores[~np.array(on_face, bool)] if len(found) else np.zeros(0))
    return rows


def video_faces(found_by: FaceDetector, path: Path, every: int, limit: int) -> tuple[list, list[np.ndarray]]:
    """(scores, boxes) of the faces in every ``every``-th frame (``limit`` frames at most), and those frames."""
    scores, frames = [], []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if len(scores) >= limit:
                break
            if index % every:
                continue
            image = frame.to_ndarray(format="bgr24")
            found = found_by.detect(image)
            scores.append((found.scores, found.boxes))
            frames.append(image)
    return scores, frames


def write_crops(folder: Path, name: str, frames, faces, low: float, high: float) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for index, (image, (scores, boxes)) in enumerate(zip(frames, faces)):
        for score, box in zip(scores, boxes):
            if low <= score < high:
                x0, y0, x1, y1 = box.astype(int)
                h, w = y1 - y0, x1 - x0
                crop = image[max(0, y0 - h):y1 + h, max(0, x0 - w):x1 + w]
                cv2.imwrite(str(folder / f"{name}-{index:04d}-{score:.2f}.png"), crop)
                written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=sorted(MODELS), default="scrfd")
    parser.add_argument("--model", help="a detector in ../shared/models, or the path of an .onnx of the backend (a "
                        "student of one); default: " + ", ".join(f"{b} {m}" for b, m in MODELS.items()))
    parser.add_argument("--input-size", type=int, default=640, help="detector.input_size (the default config's)")
    parser.add_argument("--max-upscale", type=float, default=ScrfdConfig.model_fields["max_upscale"].default,
                        help="detector.max_upscale: a photo smaller than the input is enlarged this much")
    parser.add_argument("--photos", type=int, default=600, help="masked and unmasked photos each")
    parser.add_argument("--probes", type=int, default=500, help="eval photos composed under each condition")
    parser.add_argument("--portraits", type=int, default=300, help="CelebAMask-HQ test photos searched for false "
                        "faces around the face (500 at most)")
    parser.add_argument("--cache", type=Path, help="an eval alignment cache folder (streamer eval identity's)")
    parser.add_argument("--crops", type=Path, help="write the faces found on the two clips here, to look at")
    args = parser.parse_args()
    args.model = args.model or MODELS[args.backend]
    found_by = detector(args.backend, args.model, args.input_size, args.max_upscale)
    thresholds = THRESHOLDS[args.backend]
    lowest = min(thresholds)

    masked = photo_recall(found_by, evenly(sorted((DATA / "masked_faces" / "with_mask").iterdir()), args.photos))
    clear = photo_recall(found_by, evenly(sorted((DATA / "masked_faces" / "without_mask").iterdir()), args.photos))
    probes = eval_probes(found_by, args.probes, args.cache)
    portraits = portrait_false_faces(found_by, args.portraits)
    crowd, crowd_frames = video_faces(found_by, DATA / "video" / "overhead_pedestrians_lamminhthien_vtest.avi", 5, 200)
    intel, intel_frames = video_faces(found_by, DATA / "video" / "intel_one-by-one-person-detection.mp4", 5, 200)
    if args.crops:
        written = (write_crops(args.crops, "intel", intel_frames, intel, lowest, 1.01)
                   + write_crops(args.crops, "crowd", crowd_frames, crowd, lowest, 1.01))
        print(f"{written} faces scored {lowest} or more on the two clips written to {args.crops}")

    searched_as = (f"@ {args.input_size} px, enlarged {args.max_upscale:g}x at most" if args.backend == "scrfd"
                   else "(YuNet)")
    print(f"\n## {args.model} {searched_as}: {len(masked)} masked "
          f"and {len(clear)} unmasked photos, "
          f"{len(probes['clean'])} eval probes a condition, {len(portraits)} portraits, {len(crowd)} crowd and "
          f"{len(intel)} Intel frames\n")
    conditions = list(probes)
    print("| threshold | recall masked | recall unmasked | " + " | ".join(
        f"eval {c}: found, landmark error" for c in conditions) + " | false faces / portrait | false faces / crowd "
          "frame | faces / Intel frame |")
    print("|---" * (6 + len(conditions)) + "|")
    for t in thresholds:
        cells = [f"{np.mean([found_at(t, a, b) for a, b in masked]):.1%}",
                 f"{np.mean([found_at(t, a, b) for a, b in clear]):.1%}"]
        for c in conditions:
            found, errors = 0, []
            for tight, tight_points, padded, padded_points, truth, _ in probes[c]:
                points = points_at(t, tight, tight_points, padded, padded_points)
                if points is not None:
                    found += 1
                    errors.append(np.linalg.norm(points - truth, axis=1).mean() / FaceFrame(truth).eye_distance)
            q = np.quantile(errors, [0.5, 0.9]) if errors else (np.nan, np.nan)
            cells.append(f"{found / len(probes[c]):.1%}, {q[0]:.2f} / {q[1]:.2f}")
        cells.append(f"{np.mean([(s >= t).sum() for s in portraits]):.3f}" if portraits else "-")
        cells.append(f"{np.mean([(s >= t).sum() for s, _ in crowd]):.3f}")
        cells.append(f"{np.mean([(s >= t).sum() for s, _ in intel]):.2f}")
        print(f"| {t} | " + " | ".join(cells) + " |")
    worst = max((float(s.max()) for s, _ in crowd if len(s)), default=0.0)
    print(f"\nhighest false face score on the crowd video: {worst:.2f}")


if __name__ == "__main__":
    main()
