"""Builds the occluder dataset from a face bank: an ultralytics YOLO-seg dataset and paired crops.

    streamer data occlusion --bank BANK --occluders DIR --out DIR [--per-face 2] [--workers 4]

Each aligned face of the bank's train and val splits gets ``per_face`` samples of composed
occluders; the test split is never read, so real-photo measurements can leave out every photo the
model was trained or validated on. Sample k of face i is drawn from its own random stream
(seed, i, k): the same seed gives the same dataset, whatever the number of workers.

Output (OUT/):
    yolo/images/{train,val}/*.jpg, yolo/labels/{train,val}/*.txt, yolo/data.yaml
    pairs/{train,val}/NAME_{occluded,original,mask}.png
    manifest.json  (seed, settings, counts per split and class, the bank it came from)
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from streamer.datagen.compose import ComposeSettings, Instance, Sample, compose, degrade_pair
from streamer.datagen.face_bank import BankFace, FaceBank
from streamer.datagen.labelled_faces import LabelledFace
from streamer.datagen.occluders import CLASSES, OccluderLibrary


@dataclass
class DatasetSettings:
    per_face: int = 2
    seed: int = 0
    image_size: int = 160  # YOLO training images, px (the occlusion stage's default imgsz)
    write_pairs: bool = True
    limit: int | None = None  # faces at most, train + val (for quick recipes and tests)
    clear_every: int = 3  # of the real labelled faces with nothing over them, one in this many is written
    compose: ComposeSettings = field(default_factory=ComposeSettings)


def sample_rng(seed: int, face: BankFace, k: int) -> np.random.Generator:
    return np.random.default_rng([seed, int(face.id[:8], 16), k])


def build(bank: FaceBank, out: Path, library: OccluderLibrary, settings: DatasetSettings, workers: int = 1,
          progress: Callable[[str], None] = print, labelled: list[LabelledFace] = ()) -> dict:
    """``labelled``: real faces with real occluder pixels (their train and val splits are written as they
    are, half of them with camera faults; clear ones, one in ``clear_every``, as hard negatives)."""
    work = {"train": bank.split("train"), "val": bank.split("val")}
    if settings.limit:
        work["train"] = work["train"][: max(1, settings.limit * 70 // 85)]
        work["val"] = work["val"][: max(1, settings.limit * 15 // 85)]
    jobs = [(split, face) for split in ("train", "val") for face in work[split]]
    counts = {split: Counter() for split in work}
    samples = {split: 0 for split in work}
    started = time.monotonic()
    _init_worker(out, library, settings)
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(out, library, settings)) \
            if workers > 1 else _Inline() as pool:
        for index, (split, instance_names) in enumerate(pool.map(_write_face, jobs, chunksize=8)):
            for names in instance_names:
                counts[split].update(names)
                counts[split]["(clean)"] += not names
                samples[split] += 1
            if (index + 1) % 200 == 0 or index + 1 == len(jobs):
                progress(f"{index + 1}/{len(jobs)} faces, {sum(samples.values())} samples, "
                         f"{time.monotonic() - started:.0f} s")
    written = _write_labelled(out / "yolo", labelled, settings)
    for split, instance_names in written:
        counts[split].update(instance_names)
        counts[split]["(clean)"] += not instance_names
        counts[split]["(real)"] += 1
        samples[split] += 1
    if labelled:
        progress(f"{len(written)} real labelled faces written")
    _write_data_yaml(out / "yolo")
    manifest = {
        "seed": settings.seed,
        "settings": {k: v for k, v in asdict(settings).items() if k != "compose"},
        "compose": asdict(settings.compose),
        "classes": list(CLASSES),
        "crop_size": bank.crop_size,
        "bank": str(bank.folder),
        "faces": bank.sources,
        "labelled": sorted({face.key.split("/")[0] for face in labelled}),
        "occluders": library.describe(),
        "samples": samples,
        "instances": {split: dict(sorted(c.items())) for split, c in counts.items()},
        "photos": {split: len(work[split]) for split in work},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


class _Inline:
    """The pool's interface, run in this process (one worker: simpler tracebacks, no forking)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, items, chunksize=1):
        return map(fn, items)


_worker: dict = {}


def _init_worker(out: Path, library: OccluderLibrary, settings: DatasetSettings) -> None:
    _worker.update(out=out, library=library, settings=settings)


def _write_face(job: tuple[str, BankFace]) -> tuple[str, list[list[str]]]:
    split, face = job
    out, library, settings = _worker["out"], _worker["library"], _worker["settings"]
    crop = face.image()
    names = []
    for k in range(settings.per_face):
        sample = compose(crop, face.landmarks, library, sample_rng(settings.seed, face, k), settings.compose)
        name = f"{face.id}_{k}"
        _write_yolo(out / "yolo", split, name, sample, settings.image_size)
        if settings.write_pairs:
            _write_pair(out / "pairs" / split, name, sample)
        names.append([i.name for i in sample.instances])
    return split, names


def _write_labelled(root: Path, faces: list[LabelledFace], settings: DatasetSettings) -> list[tuple[str, list[str]]]:
    written = []
    for index, face in enumerate(faces):
        if face.split not in ("train", "val") or (face.clear and index % settings.clear_every):
            continue
        rng = np.random.default_rng([settings.seed, int(hashlib.sha1(face.key.encode()).hexdigest()[:8], 16)])
        image = face.image
        if rng.random() < 0.5:  # the same camera faults as the composed samples
            image = degrade_pair(image, image, rng)[0]
        instances = [Instance(name, mask) for name, mask in face.masks.items()]
        name = "real_" + hashlib.sha1(face.key.encode()).hexdigest()[:12]
        _write_yolo(root, face.split, name, Sample(image, image, instances, np.zeros(image.shape[:2], np.float32)),
                    settings.image_size)
        written.append((face.split, [i.name for i in instances]))
    return written


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
