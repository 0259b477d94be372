"""Builds the occluder dataset: an ultralytics YOLO-seg dataset and paired crops for the inpainter.

    streamer data occlusion --faces DIR [DIR ...] --occluders DIR --detector-model scrfd.onnx --out DIR

Each face photo is aligned (5 points from SCRFD) to a 224 px ArcFace-layout crop, the layout the
occlusion stage sees in the stream, and gets ``per_face`` samples of composed occluders. Photos are
split by a hash of their path, never by sample: train 70%, val 15%, test 15%. Test photos are not
written at all; their list goes into the manifest, so measurements on real photos can leave out
every photo the model was trained or validated on. Sample k of photo i is drawn from its own
random stream (seed, i, k): the same seed gives the same dataset, whatever the order of work.

Output (OUT/):
    yolo/images/{train,val}/*.jpg, yolo/labels/{train,val}/*.txt, yolo/data.yaml
    pairs/{train,val}/NAME_{occluded,original,mask}.png
    manifest.json  (seed, settings, counts per split and class, test photos)
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from streamer.align import align_face
from streamer.datagen.compose import ComposeSettings, Sample, compose
from streamer.datagen.occluders import CLASSES, OccluderLibrary
from streamer.detect import detect_in_photo

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
CROP_SIZE = 224  # 2 x the 112 px ArcFace layout: exact halving gives the embedder's input


@dataclass
class DatasetSettings:
    per_face: int = 2
    seed: int = 0
    image_size: int = 160  # YOLO training images, px (the occlusion stage's default imgsz)
    write_pairs: bool = True
    limit: int | None = None  # photos at most, after the split (for quick recipes and tests)
    compose: ComposeSettings = field(default_factory=ComposeSettings)


def photo_key(photo: Path, root: Path) -> str:
    """The photo's name as ``ROOT_FOLDER_NAME/relative/path``: the same on every machine."""
    return f"{root.name}/{photo.relative_to(root).as_posix()}"


def split_of(photo: Path, root: Path) -> str:
    """train / val / test by a stable hash of the photo's path inside its folder."""
    digest = hashlib.sha1(photo_key(photo, root).encode()).digest()
    bucket = digest[0] * 100 // 256
    return "train" if bucket < 70 else "val" if bucket < 85 else "test"


def list_photos(folders: list[Path]) -> list[tuple[Path, Path]]:
    """(photo, its root folder) for every image under ``folders``, in a stable order."""
    photos = []
    for root in folders:
        photos += [(p, root) for p in sorted(root.rglob("*")) if p.suffix.lower() in PHOTO_SUFFIXES]
    return photos


def build(faces: list[Path], out: Path, detector, library: OccluderLibrary, settings: DatasetSettings,
          progress: Callable[[str], None] = print) -> dict:
    photos = list_photos(faces)
    by_split: dict[str, list[tuple[Path, Path]]] = {"train": [], "val": [], "test": []}
    for photo, root in photos:
        by_split[split_of(photo, root)].append((photo, root))
    if settings.limit:
        for split in ("train", "val"):
            by_split[split] = by_split[split][: max(1, settings.limit * (70 if split == "train" else 15) // 85)]
    counts = {split: Counter() for split in ("train", "val")}
    samples_written = {"train": 0, "val": 0}
    no_face: list[str] = []
    started = time.monotonic()
    work = [(split, photo) for split in ("train", "val") for photo in by_split[split]]
    for index, (split, (photo, root)) in enumerate(work):
        aligned = _aligned_face(photo, detector)
        if aligned is None:
            no_face.append(str(photo))
            continue
        crop, landmarks = aligned
        photo_id = hashlib.sha1(photo_key(photo, root).encode()).hexdigest()[:12]
        for k in range(settings.per_face):
            rng = np.random.default_rng([settings.seed, int(photo_id[:8], 16), k])
            sample = compose(crop, landmarks, library, rng, settings.compose)
            name = f"{photo_id}_{k}"
            _write_yolo(out / "yolo", split, name, sample, settings.image_size)
            if settings.write_pairs:
                _write_pair(out / "pairs" / split, name, sample)
            counts[split].update(i.name for i in sample.instances)
            counts[split]["(clean)"] += not sample.instances
            samples_written[split] += 1
        if (index + 1) % 100 == 0 or index + 1 == len(work):
            progress(f"{index + 1}/{len(work)} photos, {sum(samples_written.values())} samples, "
                     f"{time.monotonic() - started:.0f} s")
    _write_data_yaml(out / "yolo")
    manifest = {
        "seed": settings.seed,
        "settings": {k: v for k, v in asdict(settings).items() if k != "compose"},
        "compose": asdict(settings.compose),
        "classes": list(CLASSES),
        "crop_size": CROP_SIZE,
        "faces": [str(f) for f in faces],
        "occluders": library.describe(),
        "samples": samples_written,
        "instances": {split: dict(sorted(c.items())) for split, c in counts.items()},
        "photos": {split: len(by_split[split]) for split in by_split},
        "photos_without_a_face": no_face,
        "test_photos": [photo_key(p, root) for p, root in by_split["test"]],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _aligned_face(photo: Path, detector) -> tuple[np.ndarray, np.ndarray] | None:
    image = cv2.imread(str(photo))
    if image is None:
        return None
    found, image = detect_in_photo(detector, image)
    if not len(found):
        return None
    landmarks = found.landmarks[int(found.scores.argmax())]
    crop = align_face(image, landmarks, CROP_SIZE)
    return crop.image, cv2.transform(landmarks[None].astype(np.float32), crop.matrix)[0]


def mask_polygons(mask: np.ndarray, min_area_px: float = 4.0) -> list[np.ndarray]:
    """Outer contours of a binary mask, each (n, 2) in pixels; YOLO labels hold no holes."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1, 2).astype(np.float32) for c in contours if cv2.contourArea(c) >= min_area_px and len(c) >= 3]


def _write_yolo(root: Path, split: str, name: str, sample: Sample, image_size: int) -> None:
    image = cv2.resize(sample.occluded, (image_size, image_size), interpolation=cv2.INTER_AREA)
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "images" / split / f"{name}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    lines = []
    for instance in sample.instances:
        small = cv2.resize(instance.mask.astype(np.uint8), (image_size, image_size), interpolation=cv2.INTER_NEAREST)
        for polygon in mask_polygons(small):
            coords = " ".join(f"{v:.4f}" for v in (polygon / image_size).clip(0, 1).reshape(-1))
            lines.append(f"{instance.class_id} {coords}")
    (root / "labels" / split / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))


def _write_pair(folder: Path, name: str, sample: Sample) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"{name}_occluded.png"), sample.occluded)
    cv2.imwrite(str(folder / f"{name}_original.png"), sample.original)
    # Every hidden pixel, labelled or not (specks too small to label still need inpainting).
    cv2.imwrite(str(folder / f"{name}_mask.png"), (sample.coverage > 0.5).astype(np.uint8) * 255)


def _write_data_yaml(root: Path) -> None:
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(CLASSES))
    (root / "data.yaml").write_text(f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
