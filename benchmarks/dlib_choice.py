"""Should dlib's detector and/or ResNet embedder become the offline defaults? Measured on real photos.

    .venv/bin/python benchmarks/dlib_choice.py [--photos 200] [--mmod-photos 20] [--per-person 10]
    .venv/bin/python benchmarks/dlib_choice.py --chips       # embedder: predictor chip vs one fixed warp
    .venv/bin/python benchmarks/dlib_choice.py --threshold   # the embedder's default threshold (faces_train)
    .venv/bin/python benchmarks/dlib_choice.py --derive      # dlib's 5 points in the ArcFace layout
    .venv/bin/python benchmarks/dlib_choice.py --eval        # FAR/TAR at the default threshold on faces_eval
    .venv/bin/python benchmarks/dlib_choice.py --section detectors --mmod-photos 0 \
        --haar eye_min_neighbors=3 --haar eye_min_neighbors=3,min_neighbors=3   # Haar settings beside its default
    .venv/bin/python benchmarks/dlib_choice.py --section detectors --mmod-photos 0 \
        --yunet out/runs/detector-yunet-cpu/detector.onnx   # another YuNet file (a student) beside OpenCV Zoo's

Detectors (the shipped YuNet student, the default; Haar with its default settings and configs/demo.yaml's old ones,
SCRFD-2.5G, OpenCV Zoo's YuNet, dlib HOG and MMOD):
recall on ../shared masked_faces/with_mask and without_mask (evenly spaced photos, one face each mostly,
``detect_in_photo``), false faces a frame on the overhead crowd video (no visible face; every 10th of its
first 100 frames), ms a 1280x720 frame; dlib's landmarks against SCRFD's (mean error over the 5 points,
as a share of SCRFD's eye distance); region search against full frames on the demo clip.
Embedders (LBP, MobileFaceNet, dlib): same-person vs different-person pairs across different photos, AUC
and TAR at FAR 1%, on faces/identities (the named people, duplicates dropped, with UTKFace strangers) and
faces_train/glint24_112 (ArcFace-aligned already); ms a face. Photos are aligned with SCRFD-2.5G.
Nothing here is fitted to faces_eval: ``--eval`` only reports.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import av
import cv2
import numpy as np
from sampling import evenly  # benchmarks/sampling.py: run as a script, this folder is on the path

from engines import Device
from streamer.align import ARCFACE_112, align_face
from streamer.detect import FaceDetector, detect_in_photo
from streamer.detect.dlib_detector import DlibDetector, DlibDetectorConfig, import_dlib, similarity_batch
from streamer.detect.haar import HaarConfig, HaarDetector
from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
from streamer.detect.yunet import YunetConfig, YunetDetector
from streamer.embed import FaceEmbedder
from streamer.embed.arcface import ArcFaceConfig, ArcFaceEmbedder
from streamer.embed.dlib_resnet import CHIP_POINTS, CHIP_PX, DlibEmbedderConfig, DlibResnetEmbedder
from streamer.embed.lbp_histogram import LbpHistogramConfig, LbpHistogramEmbedder
from streamer.records import Detections

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data"
CPU = Device("cpu")
CROWD = DATA / "video" / "overhead_pedestrians_lamminhthien_vtest.avi"


# ---------------------------------------------------------------- data


def named_photos() -> list[tuple[Path, str]]:
    """The named people's photos of faces/identities with one face each, byte-identical copies dropped."""
    root = DATA / "faces" / "identities"
    photos = [(p, p.parent.name) for p in sorted((root / "knn_examples" / "train").glob("*/*"))]
    photos += [(root / "knn_examples" / "test" / name, who) for name, who in (
        ("alex_lacamoire1.jpg", "alex_lacamoire"), ("johnsnow_test1.jpg", "kit_harington"), ("obama1.jpg", "obama"))]
    photos += [(root / "alex-lacamoire.png", "alex_lacamoire"), (root / "lin-manuel-miranda.png", "lin_manuel_miranda"),
               (root / "obama-1080p.jpg", "obama")]
    photos += [(root / "tests" / "test_images" / name, who) for name, who in (
        ("obama.jpg", "obama"), ("obama2.jpg", "obama"), ("obama3.jpg", "obama"), ("biden.jpg", "biden"))]
    seen, unique = set(), []
    for path, who in photos:
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            unique.append((path, who))
    return unique


def strangers(count: int) -> list[tuple[Path, str]]:
    """UTKFace photos (faces_train; in-the-wild, one face each), each its own person."""
    return [(p, p.name) for p in evenly(sorted((DATA / "faces_train" / "utkface_200").glob("*.jpg")), count)]


def glint_crops(per_person: int, skip: int = 0) -> tuple[np.ndarray, list[str]]:
    """(n, 112, 112, 3) ArcFace-aligned crops of glint24_112 (``per_person`` each after ``skip``) and ids."""
    root = DATA / "faces_train" / "glint24_112"
    picked = [(p, d.name) for d in sorted(root.iterdir()) if d.is_dir()
              for p in sorted(d.glob("*.jpg"))[skip:skip + per_person]]
    return np.stack([cv2.imread(str(p)) for p, _ in picked]), [who for _, who in picked]


def video_frames(path: Path, limit: int, every: int) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for i, f in zip(range(limit), container.decode(video=0)) if i % every == 0]


# ---------------------------------------------------------------- detectors


def scrfd() -> ScrfdDetector:
    return ScrfdDetector(ScrfdConfig(backend="scrfd", model=SHARED / "models" / "scrfd_2.5g_bnkps.onnx"), CPU)


def yunet(threshold: float | None = None, landmarks: str = "dlib", model: Path | None = None) -> YunetDetector:
    """OpenCV Zoo's YuNet, or ``model``; at its default threshold (0.7; a student's 0.85) unless ``threshold``."""
    return YunetDetector(YunetConfig(backend="yunet", model=model or SHARED / "models" / "yunet_face_detection.onnx",
                                     score_threshold=threshold, landmarks=landmarks), CPU)


def yunet_student(landmarks: str = "dlib") -> YunetDetector:
    """The student the offline default ships (its own default threshold, 0.85)."""
    return YunetDetector(YunetConfig(backend="yunet", landmarks=landmarks), CPU)


def existing_file(text: str) -> Path:
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return Path(text)


def haar_settings(text: str) -> HaarConfig:
    """``--haar KEY=VALUE[,KEY=VALUE...]``: a Haar detector's settings (``detector:`` keys of its backend)."""
    from pydantic import ValidationError

    items = [item.split("=", 1) for item in text.split(",")]
    if any(len(item) != 2 for item in items):
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE[,KEY=VALUE...]")
    try:
        return HaarConfig(**{key.strip(): value.strip() for key, value in items})
    except ValidationError as exc:
        error = exc.errors()[0]
        raise argparse.ArgumentTypeError(f"{text!r}: {'.'.join(map(str, error['loc']))}: {error['msg']}") from None


def detectors(mmod: bool, haar: Iterable[HaarConfig] = (),
              yunets: Iterable[Path] = ()) -> dict[str, Callable[[], FaceDetector]]:
    found = {
        "Haar (its default settings; the offline default until 2026-12-06)": lambda: HaarDetector(HaarConfig(), CPU),
        "Haar (scale 1.05, demo.yaml's until 2026-12-06)": lambda: HaarDetector(HaarConfig(scale_factor=1.05), CPU),
        **{f"Haar ({', '.join(f'{k}={v}' for k, v in c.model_dump(exclude_defaults=True).items())})":
           (lambda c=c: HaarDetector(c, CPU)) for c in haar},
        "SCRFD-2.5G": scrfd,
        "YuNet student (shipped, the default: score 0.85, dlib's 5 points)": yunet_student,
        "YuNet (score 0.7, dlib's 5 points: its default)": yunet,
        "YuNet, its own 5 points": lambda: yunet(landmarks="yunet"),
        "YuNet, score 0.6": lambda: yunet(0.6),
        "YuNet, score 0.9 (OpenCV's example)": lambda: yunet(0.9),
        **{f"YuNet {path} (its default score, dlib's 5 points)": (lambda path=path: yunet(model=path))
           for path in yunets},
        "dlib HOG, upsample 0": lambda: DlibDetector(DlibDetectorConfig(backend="dlib", upsample=0), CPU),
        "dlib HOG, upsample 1 (default)": lambda: DlibDetector(DlibDetectorConfig(backend="dlib"), CPU),
    }
    if mmod:
        found["dlib MMOD, upsample 0"] = lambda: DlibDetector(
            DlibDetectorConfig(backend="dlib", method="mmod", upsample=0), CPU)
    return found


def best_face(detector: FaceDetector, path: Path) -> tuple[Detections, np.ndarray]:
    """The detections in a photo (``detect_in_photo``) and the image they are in."""
    return detect_in_photo(detector, cv2.imread(str(path)))


def photo_pass(detector: FaceDetector, paths: list[Path]) -> tuple[float, list[np.ndarray | None], list[float]]:
    """Recall over ``paths``, each photo's most confident 5 points (in the original photo's pixels, None
    where no face) and the scores of the faces found."""
    points, scores = [], []
    for path in paths:
        image = cv2.imread(str(path))
        found, searched = detect_in_photo(detector, image)
        if not len(found):
            points.append(None)
            continue
        pad = (searched.shape[0] - image.shape[0]) // 2  # detect_in_photo's border, if it added one
        points.append(found.landmarks[int(found.scores.argmax())] - pad)
        scores.append(float(found.scores.max()))
    return float(np.mean([p is not None for p in points])), points, scores


def crowd_pass(detector: FaceDetector, frames: list[np.ndarray]) -> tuple[float, float, list[float]]:
    """False faces a frame, ms a frame, and the false faces' scores."""
    started = time.perf_counter()
    found = [detector.detect(frame) for frame in frames]
    ms = 1000 * (time.perf_counter() - started) / len(frames)
    return float(np.mean([len(f) for f in found])), ms, [float(s) for f in found for s in f.scores]


def landmark_errors(points: list[np.ndarray | None], reference: list[np.ndarray | None]) -> np.ndarray:
    """(m, 5) per-point errors as shares of the reference's eye distance, where both found the face and
    agree on where it is (their eye midpoints within one eye distance: else they found different faces)."""
    rows = []
    for mine, ref in zip(points, reference):
        if mine is None or ref is None:
            continue
        eye = float(np.linalg.norm(ref[1] - ref[0]))
        if np.linalg.norm(mine[:2].mean(0) - ref[:2].mean(0)) < eye:
            rows.append(np.linalg.norm(mine - ref, axis=1) / eye)
    return np.array(rows).reshape(-1, 5)


def regions_check(detector: FaceDetector, full_every: int = 4) -> dict[str, float]:
    """On the demo clip: faces that region frames find out of those full detection finds on the same
    frames, their landmarks' distance from the full frame's (share of the eye distance), and the time a
    region frame takes as a share of a full frame's. Regions are searched whatever the detector's
    ``supports_regions`` says: this is what it is decided by."""
    from streamer.demo import build_demo
    from streamer.detect.regions import RegionScheduler
    from streamer.records import VideoFrame
    from streamer.track.iou import iou_matrix

    with tempfile.TemporaryDirectory() as tmp:
        build_demo(Path(tmp), frames=40)
        frames = video_frames(Path(tmp) / "demo.mp4", 40, 1)
    detector.supports_regions = True
    scheduler = RegionScheduler(detector, full_every)
    full_s, region_s, found, total, errors = 0.0, 0.0, 0, 0, []
    for index, image in enumerate(frames):
        started = time.perf_counter()
        scheduled = scheduler.detect([VideoFrame("demo", index, image, None, 0.0, 0.0)])[0]
        spent = time.perf_counter() - started
        if index % full_every == 0:
            full_s += spent
            continue
        region_s += spent
        full = detector.detect(image)
        total += len(full)
        if len(full) and len(scheduled):
            iou = iou_matrix(full.boxes, scheduled.boxes)
            for k, j in enumerate(iou.argmax(axis=1)):
                if iou[k, j] > 0.5:
                    found += 1
                    eye = np.linalg.norm(full.landmarks[k, 1] - full.landmarks[k, 0])
                    errors.append(np.linalg.norm(scheduled.landmarks[j] - full.landmarks[k], axis=1).mean() / eye)
    full_frames = -(-len(frames) // full_every)
    return {"found": found / max(total, 1), "landmark_gap": float(np.mean(errors)) if errors else float("nan"),
            "time_share": (region_s / (len(frames) - full_frames)) / (full_s / full_frames)}


def detector_section(args: argparse.Namespace) -> None:
    masked = evenly(sorted((DATA / "masked_faces" / "with_mask").iterdir()), args.photos)
    clear = evenly(sorted((DATA / "masked_faces" / "without_mask").iterdir()), args.photos)
    crowd = video_frames(CROWD, 100, 10)
    print(f"\n## Detectors ({len(masked)} masked, {len(clear)} unmasked photos; {len(crowd)} crowd frames "
          f"1280x720; MMOD on {args.mmod_photos} photos each and 1 frame)\n")
    print("| detector | recall, masked | recall, unmasked | false faces / crowd frame | ms / 1280x720 frame |")
    print("|---|---|---|---|---|")
    points, scores = {}, {}
    for name, build in detectors(args.mmod_photos > 0, args.haar, args.yunet).items():
        detector = build()
        few = "MMOD" in name
        sets = [evenly(masked, args.mmod_photos), evenly(clear, args.mmod_photos)] if few else [masked, clear]
        recall_masked, points[name, "masked"], found_scores = photo_pass(detector, sets[0])
        recall_clear, points[name, "clear"], more = photo_pass(detector, sets[1])
        false_faces, ms, false_scores = crowd_pass(detector, crowd[:1] if few else crowd)
        scores[name] = (found_scores + more, false_scores)
        print(f"| {name} | {recall_masked:.1%} | {recall_clear:.1%} | {false_faces:.2f} | {ms:.0f} |")
    print("\n## Landmarks against SCRFD-2.5G's (where both find the face; share of SCRFD's eye distance)\n")
    print("| detector | photos | mean error | eyes | nose | mouth corners | share under 15% |")
    print("|---|---|---|---|---|---|---|")
    for name in dict.fromkeys(name for name, _ in points):
        if name.startswith("SCRFD"):
            continue
        few = "MMOD" in name
        for kind in ("clear", "masked"):
            reference = points["SCRFD-2.5G", kind]
            if few:
                photos = masked if kind == "masked" else clear
                picked = set(map(str, evenly(photos, args.mmod_photos)))
                reference = [r for r, p in zip(reference, photos) if str(p) in picked]
            err = landmark_errors(points[name, kind], reference)
            if len(err):
                print(f"| {name} | {len(err)} {kind} | {err.mean():.1%} | {err[:, :2].mean():.1%} | "
                      f"{err[:, 2].mean():.1%} | {err[:, 3:].mean():.1%} | {(err.mean(axis=1) < 0.15).mean():.0%} |")
    true, false = scores["dlib HOG, upsample 1 (default)"]
    print(f"\ndlib HOG (upsample 1) scores: faces in photos {_quantiles(true)}; crowd false faces {_quantiles(false)}")
    for name, build in (("dlib HOG, upsample 1", lambda: DlibDetector(DlibDetectorConfig(backend="dlib"), CPU)),
                        ("SCRFD-2.5G", scrfd), ("YuNet student (shipped)", yunet_student),
                        ("YuNet student, its own points", lambda: yunet_student("yunet")), ("YuNet", yunet),
                        ("YuNet, its own points", lambda: yunet(landmarks="yunet"))):
        check = regions_check(build())
        print(f"regions vs full frames on the demo clip, {name}: {check['found']:.0%} of the faces found, "
              f"landmarks {check['landmark_gap']:.1%} of the eye distance apart, "
              f"{check['time_share']:.0%} of a full frame's time")


def _quantiles(values: list[float]) -> str:
    if not values:
        return "none"
    q = np.quantile(values, [0.05, 0.5, 0.95])
    return f"n={len(values)}, 5/50/95%: {q[0]:.2f} / {q[1]:.2f} / {q[2]:.2f}"


# ---------------------------------------------------------------- embedders


def aligned(photos: Iterable[tuple[Path, str]], detector: FaceDetector) -> tuple[np.ndarray, list[str]]:
    """(n, 112, 112, 3) crops of each photo's most confident face, aligned on ``detector``'s points."""
    crops, ids = [], []
    for path, who in photos:
        found, image = best_face(detector, path)
        if len(found):
            crops.append(align_face(image, found.landmarks[int(found.scores.argmax())], 112).image)
            ids.append(who)
    return np.stack(crops), ids


def roc(genuine: np.ndarray, impostor: np.ndarray) -> dict[str, float]:
    """AUC (the chance a same-person pair outscores a different-person one) and the TAR at FAR 1% and 0.1%,
    each threshold the impostor score that share of impostors exceeds."""
    scores = np.concatenate([genuine, impostor])
    ranks = np.argsort(np.argsort(scores, kind="stable"), kind="stable") + 1
    auc = (ranks[:len(genuine)].sum() - len(genuine) * (len(genuine) + 1) / 2) / (len(genuine) * len(impostor))
    ordered = np.sort(impostor)[::-1]
    out = {"auc": float(auc)}
    for far in (0.01, 0.001):
        out[f"tar@far{far:g}"] = float((genuine > ordered[min(int(far * len(ordered)), len(ordered) - 1)]).mean())
    return out


def _shown(result: dict[str, float]) -> str:
    return ", ".join(f"{key} {value:.4f}" for key, value in result.items())


def pair_stats(vectors: np.ndarray, ids: list[str]) -> tuple[dict, np.ndarray, np.ndarray]:
    """roc() of the same-person and different-person pairs (each pair once), and the two score sets."""
    labels = np.array(ids)
    scores = vectors @ vectors.T
    same = labels[:, None] == labels[None, :]
    upper = np.triu(np.ones_like(same), 1)
    genuine, impostor = scores[same & upper], scores[~same & upper]
    return roc(genuine, impostor), genuine, impostor


def timed_embed(embedder: FaceEmbedder, crops: np.ndarray) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    vectors = embedder.embed(crops)
    return vectors, 1000 * (time.perf_counter() - started) / len(crops)


def embedders() -> dict[str, Callable[[], FaceEmbedder]]:
    return {
        "LBP histogram (default)": lambda: LbpHistogramEmbedder(LbpHistogramConfig(), CPU),
        "MobileFaceNet": lambda: ArcFaceEmbedder(
            ArcFaceConfig(backend="arcface", model=SHARED / "models" / "mobilefacenet_128d.onnx"), CPU),
        # single view, as the choice was measured (2026-12-01); mirrored since: benchmarks/embedder_mirror.py
        "dlib ResNet": lambda: DlibResnetEmbedder(DlibEmbedderConfig(backend="dlib", mirror=False), CPU),
    }


def embedder_section(args: argparse.Namespace) -> None:
    people = named_photos()
    named = aligned(people + strangers(args.strangers), scrfd())
    glint = glint_crops(args.per_person)
    known = {who for _, who in people}
    print(f"\n## Embedders (named: {sum(who in known for who in named[1])} photos of {len(known)} people and "
          f"{sum(who not in known for who in named[1])} UTKFace strangers; glint24_112: {len(glint[0])} faces, "
          f"24 people)\n")
    print("| embedder | named: AUC | named: TAR@FAR1% | glint24: AUC | glint24: TAR@FAR1% | glint24: TAR@FAR0.1% "
          "| ms / face | default threshold: FAR / TAR (glint24) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, build in embedders().items():
        embedder = build()
        named_roc, _, _ = pair_stats(embedder.embed(named[0]), named[1])
        vectors, ms = timed_embed(embedder, glint[0])
        glint_roc, genuine, impostor = pair_stats(vectors, glint[1])
        at = embedder.default_threshold
        print(f"| {name} | {named_roc['auc']:.3f} | {named_roc['tar@far0.01']:.0%} | {glint_roc['auc']:.3f} | "
              f"{glint_roc['tar@far0.01']:.0%} | {glint_roc['tar@far0.001']:.0%} | {ms:.1f} | "
              f"{at}: {(impostor >= at).mean():.1%} / {(genuine >= at).mean():.0%} |")


# ---------------------------------------------------------------- the embedder's choices


def fixed_chips(crops: np.ndarray) -> list[np.ndarray]:
    """Option (a): one fixed similarity from the ArcFace layout to dlib's chip (the average face's)."""
    from streamer.detect.dlib_detector import DLIB5_IN_ARCFACE_112

    matrix = similarity_batch(DLIB5_IN_ARCFACE_112[None].astype(np.float64), CHIP_POINTS[None])[0]
    return [cv2.cvtColor(cv2.warpAffine(c, matrix, (CHIP_PX, CHIP_PX), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REPLICATE), cv2.COLOR_BGR2RGB) for c in crops]


def jittered(crops: np.ndarray, rng: np.random.Generator, px: float = 5, degrees: float = 6,
             scale: float = 0.08) -> np.ndarray:
    """Crops misaligned as by imprecise landmarks: shifted, turned and scaled at random."""
    out = []
    for crop in crops:
        centre = (56 + rng.uniform(-px, px), 56 + rng.uniform(-px, px))
        matrix = cv2.getRotationMatrix2D(centre, rng.uniform(-degrees, degrees), 1 + rng.uniform(-scale, scale))
        matrix[:, 2] += rng.uniform(-px, px, 2)
        out.append(cv2.warpAffine(crop, matrix, (112, 112), borderMode=cv2.BORDER_REPLICATE))
    return np.stack(out)


def chips_section(args: argparse.Namespace) -> None:
    """Option (b) (the predictor on the crop, as DlibResnetEmbedder does) vs (a) (one fixed warp)."""
    from streamer.embed.dlib_resnet import describe

    embedder = DlibResnetEmbedder(DlibEmbedderConfig(backend="dlib", mirror=False), CPU)
    named = aligned(named_photos() + strangers(args.strangers), scrfd())
    glint = glint_crops(16, skip=12)  # photos 12-27 of each person (a slice no other choice was made on)
    shaken = (jittered(glint[0], np.random.default_rng(1)), glint[1])
    print("\n## dlib chip from an ArcFace-layout crop\n")
    print("| chip | set | AUC | TAR@FAR1% | TAR@FAR0.1% |")
    print("|---|---|---|---|---|")
    for label, (crops, ids) in (("named", named), ("glint24", glint), ("glint24 jittered", shaken)):
        for option, chips in (("(b) 5-point predictor on the crop", embedder.chips),
                              ("(a) one fixed warp", fixed_chips)):
            vectors = describe(embedder._engine, embedder._input_name, chips(crops))
            result, _, _ = pair_stats(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), ids)
            print(f"| {option} | {label} | {result['auc']:.4f} | {result['tar@far0.01']:.1%} | "
                  f"{result['tar@far0.001']:.1%} |")


def threshold_section(args: argparse.Namespace) -> None:
    """The cosine 1% of different-person pairs reach on glint24_112 (faces_train), 40 photos a person, single view
    (SINGLE_VIEW_THRESHOLD; the mirrored one: benchmarks/embedder_mirror.py)."""
    embedder = DlibResnetEmbedder(DlibEmbedderConfig(backend="dlib", mirror=False), CPU)
    crops, ids = glint_crops(40)
    result, genuine, impostor = pair_stats(embedder.embed(crops), ids)
    for far in (0.01, 0.001):
        at = float(np.quantile(impostor, 1 - far))
        print(f"glint24 ({len(crops)} faces, {len(impostor)} different-person pairs): FAR {far:.1%} at cosine "
              f"{at:.4f}, TAR there {(genuine >= at).mean():.1%}")
    print(f"different-person cosines 5/50/95%: {np.quantile(impostor, [0.05, 0.5, 0.95]).round(3).tolist()}; "
          f"same-person: {np.quantile(genuine, [0.05, 0.5, 0.95]).round(3).tolist()}; {_shown(result)}")


def eval_section(args: argparse.Namespace) -> None:
    """Reports only (nothing is chosen on it): the default threshold on faces_eval/celeba_identity_160."""
    root = DATA / "faces_eval" / "celeba_identity_160"
    people = evenly(sorted(d for d in root.iterdir() if d.is_dir()), args.eval_people)
    photos = [(p, d.name) for d in people for p in sorted(d.glob("*.jpg"))[:4]]
    crops, ids = aligned(photos, scrfd())
    for name, build in embedders().items():
        embedder = build()
        result, genuine, impostor = pair_stats(embedder.embed(crops), ids)
        at = embedder.default_threshold
        print(f"celeba_identity_160 ({len(crops)} faces, {len(set(ids))} people), {name}: {_shown(result)}; "
              f"at its default threshold {at}: FAR {(impostor >= at).mean():.2%}, TAR {(genuine >= at).mean():.1%}")


def derive_section(args: argparse.Namespace) -> None:
    """dlib's 5 points and HOG box in the ArcFace 112 layout, averaged over UTKFace photos (faces_train)
    aligned on SCRFD-2.5G's points: DLIB5_IN_ARCFACE_112 and HOG_BOX_IN_ARCFACE_112."""
    dlib, models = import_dlib()
    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
    reference = scrfd()
    parts, boxes = [], []
    for path in sorted((DATA / "faces_train" / "utkface_200").glob("*.jpg"))[::20][:300]:
        found, image = best_face(reference, path)
        rgb = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        rects = hog(rgb, 1) if len(found) else []
        if not len(rects):
            continue
        points = found.landmarks[int(found.scores.argmax())]
        centre = points.mean(axis=0)
        rect = min(rects, key=lambda r: np.hypot(r.center().x - centre[0], r.center().y - centre[1]))
        matrix = similarity_batch(points[None].astype(np.float64), ARCFACE_112[None].astype(np.float64))[0]
        shape = np.array([(p.x, p.y) for p in predictor(rgb, rect).parts()], np.float64)
        corners = np.array([[rect.left(), rect.top()], [rect.right(), rect.bottom()]], np.float64)
        parts.append(shape @ matrix[:, :2].T + matrix[:, 2])
        boxes.append((corners @ matrix[:, :2].T + matrix[:, 2]).ravel())
    parts, boxes = np.array(parts), np.array(boxes)
    keep = np.abs(parts - np.median(parts, axis=0)).max(axis=(1, 2)) < 10  # the HOG box was another face
    np.set_printoptions(precision=2, suppress=True)
    print(f"{keep.sum()} of {len(parts)} faces\nDLIB5_IN_ARCFACE_112 =\n{parts[keep].mean(0)}\n"
          f"spread {parts[keep].std(0)}\nHOG_BOX_IN_ARCFACE_112 = {boxes[keep].mean(0)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=150, help="masked and unmasked photos each, for recall")
    parser.add_argument("--mmod-photos", type=int, default=12, help="photos each for MMOD (0: leave it out)")
    parser.add_argument("--per-person", type=int, default=10, help="glint24 photos a person")
    parser.add_argument("--strangers", type=int, default=100, help="UTKFace strangers beside the named people")
    parser.add_argument("--eval-people", type=int, default=60, help="faces_eval people for --eval (4 photos each)")
    parser.add_argument("--section", choices=["detectors", "embedders", "both"], default="both")
    parser.add_argument("--haar", type=haar_settings, action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="also measure Haar with these settings (its detector: keys), one variant a flag")
    parser.add_argument("--yunet", type=existing_file, action="append", default=[], metavar="ONNX",
                        help="also measure this YuNet file (a student: streamer train detector), one a flag")
    for flag in ("chips", "threshold", "derive", "eval"):
        parser.add_argument(f"--{flag}", action="store_true")
    args = parser.parse_args()
    extra = {"chips": chips_section, "threshold": threshold_section, "derive": derive_section, "eval": eval_section}
    chosen = [run for flag, run in extra.items() if getattr(args, flag)]
    if chosen:
        for run in chosen:
            run(args)
        return
    if args.section in ("detectors", "both"):
        detector_section(args)
    if args.section in ("embedders", "both"):
        embedder_section(args)


if __name__ == "__main__":
    main()
