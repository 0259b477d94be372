"""The face bank: every face photo aligned once to the ArcFace layout, with its 5 points, split by photo.

    streamer data faces --faces DIR [DIR ...] --detector-model scrfd.onnx --out BANK

The bank is the one step of the data engine that needs a face detector. Everything after it (the
occluder dataset, the inpainter's training pairs, which are composed on the fly) reads only the
bank, so it runs wherever OpenCV and NumPy do, a GPU machine without insightface included.

Photos are split by a stable hash of their path inside their folder: train 70%, val 15%, test 15%.
The test split is written too: it is what every held-out measurement (real masked faces, the
inpainter's evaluation) is taken on, and the training commands never read it.

Layout (BANK/):
    faces.json          crop size, sources, and per face: id, photo key, split, 5 points in the crop
    {train,val,test}/ID.jpg   aligned (224, 224) crops, JPEG quality 95
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from streamer.errors import ConfigError

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
CROP_SIZE = 224  # 2 x the 112 px ArcFace layout: exact halving gives the embedder's input
SPLITS = ("train", "val", "test")
JPEG_QUALITY = 95  # the source photos are JPEGs already; 95 keeps the bank small enough to carry


def photo_key(photo: Path, root: Path) -> str:
    """The photo's name as ``ROOT_FOLDER_NAME/relative/path``: the same on every machine."""
    return f"{root.name}/{photo.relative_to(root).as_posix()}"


def face_id(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def split_of(photo: Path, root: Path) -> str:
    """train / val / test by a stable hash of the photo's path inside its folder."""
    bucket = hashlib.sha1(photo_key(photo, root).encode()).digest()[0] * 100 // 256
    return "train" if bucket < 70 else "val" if bucket < 85 else "test"


def list_photos(folders: list[Path]) -> list[tuple[Path, Path]]:
    """(photo, its root folder) for every image under ``folders``, in a stable order."""
    photos = []
    for root in folders:
        photos += [(p, root) for p in sorted(root.rglob("*")) if p.suffix.lower() in PHOTO_SUFFIXES]
    return photos


@dataclass(frozen=True)
class BankFace:
    id: str
    key: str  # the photo it came from, as photo_key() names it
    split: str
    landmarks: np.ndarray  # (5, 2) float32, pixels of the aligned crop
    path: Path

    def image(self) -> np.ndarray:
        """(224, 224, 3) uint8 BGR."""
        image = cv2.imread(str(self.path))
        if image is None:
            raise ConfigError(f"face bank: cannot read {self.path}")
        return image


class FaceBank:
    def __init__(self, folder: Path):
        index = Path(folder) / "faces.json"
        if not index.is_file():
            raise ConfigError(f"not a face bank (no faces.json): {folder} (build one with 'streamer data faces')")
        meta = json.loads(index.read_text())
        self.folder = Path(folder)
        self.crop_size: int = meta["crop_size"]
        self.sources: list[str] = meta["sources"]
        self.faces = [BankFace(f["id"], f["key"], f["split"], np.asarray(f["landmarks"], np.float32),
                               self.folder / f["split"] / f"{f['id']}.jpg") for f in meta["faces"]]

    def split(self, name: str) -> list[BankFace]:
        return [f for f in self.faces if f.split == name]

    def keys(self, split: str) -> set[str]:
        return {f.key for f in self.split(split)}


def train_and_val(folders: list[Path], flag: str, limit: int | None = None,
                  interleave: bool = False) -> tuple[list[BankFace], list[BankFace]]:
    """The training and validation faces of several banks (``limit``: training faces at most), one bank after
    another or, with ``interleave``, taken from each bank in turn (the first n faces come from every bank); a
    one-line ConfigError naming ``flag`` and the folder when one is not a bank or holds no faces."""
    trains, vals = [], []
    for folder in folders:
        if not (folder / "faces.json").is_file():
            raise ConfigError(f"{flag}: {folder} is not a face bank (no faces.json); build one with "
                              f"'streamer data faces --faces PHOTOS --out {folder}'")
        bank = FaceBank(folder)
        if not bank.faces:
            raise ConfigError(f"{flag}: {folder} holds no faces (the detector found none in its photos)")
        trains.append(bank.split("train"))
        vals.append(bank.split("val"))
    train, val = (_interleaved(trains), _interleaved(vals)) if interleave else (sum(trains, []), sum(vals, []))
    if not train or not val:
        raise ConfigError(f"{flag}: {len(train)} training and {len(val)} validation faces in "
                          f"{', '.join(map(str, folders))}; both are needed (a bank splits its photos 70/15/15 by "
                          f"name)")
    return (train[:limit] if limit else train), val


def _interleaved(lists: list[list]) -> list:
    out, longest = [], max((len(items) for items in lists), default=0)
    for k in range(longest):
        out += [items[k] for items in lists if k < len(items)]
    return out

def build_face_bank(folders: list[Path], out: Path, detector,
                    progress: Callable[[str], None] = print) -> FaceBank:
    """Aligns the most confident face of every photo under ``folders`` into ``out``."""
    from streamer.detect import align_most_confident

    photos = list_photos(folders)
    if not photos:
        raise ConfigError(f"--faces: no photos ({', '.join(PHOTO_SUFFIXES)}) under {', '.join(map(str, folders))}")
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)
    faces, no_face = [], []
    started = time.monotonic()
    for index, (photo, root) in enumerate(photos):
        image = cv2.imread(str(photo))
        aligned = align_most_confident(detector, image, CROP_SIZE) if image is not None else None
        if aligned is None:
            no_face.append(photo_key(photo, root))
            continue
        crop, points = aligned
        key = photo_key(photo, root)
        record = {"id": face_id(key), "key": key, "split": split_of(photo, root),
                  "landmarks": np.round(points, 2).tolist()}
        cv2.imwrite(str(out / record["split"] / f"{record['id']}.jpg"), crop.image,
                    [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        faces.append(record)
        if (index + 1) % 200 == 0 or index + 1 == len(photos):
            progress(f"{index + 1}/{len(photos)} photos aligned, {len(no_face)} without a face, "
                     f"{time.monotonic() - started:.0f} s")
    meta = {"crop_size": CROP_SIZE, "sources": [str(f) for f in folders],
            "detector": getattr(detector, "description", type(detector).__name__),
            "faces": faces, "photos_without_a_face": no_face}
    (out / "faces.json").write_text(json.dumps(meta, indent=0))
    return FaceBank(out)
