"""Real faces with real occluder pixels, aligned to the ArcFace layout together with their labels.

Two public sets label occluders per pixel (in this project's recipes, from ``../shared/data/faces_train``):

- ``celebamaskhq``: CelebAMask-HQ (images/N.jpg, labels/N.png: 19 classes in its colour palette): eyeglasses (3)
  and hats (14).
  Its "eyeglasses" covers sunglasses too: glasses whose lenses are dark are named ``sunglasses``.
  Images 0-3999 are train, 4000-4499 val, 4500-4999 test.
- ``maskedfacenet``: MaskedFace-Net segmentation ({training,testing}/{CWM,IWM}/{images,masks}, PASCAL palette):
  face masks (2).
  ``testing/`` is test; ``training/`` is split train / val by a hash of the path.

Each face is found by a detector (its most confident face), and the photo and its label map are warped by the
same similarity transform, the labels by nearest neighbour, so a mask reaching the chin or the cheeks stays whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from streamer.align import similarity, template
from streamer.errors import ConfigError

LABELLED_SETS = ("celebamaskhq", "maskedfacenet")
CELEBA_GLASSES, CELEBA_HAT = 3, 14
MASKEDFACENET_MASK = 2
# CelebAMask-HQ's label colours (RGB) of the classes read here: its color_list, by class id. Ids 1-12 are the face's
# own (skin, nose, glasses, eyes, brows, ears, mouth, lips).
CELEBA_COLOURS = {1: (204, 0, 0), 2: (76, 153, 0), CELEBA_GLASSES: (204, 204, 0), 4: (51, 51, 255), 5: (204, 0, 204),
                  6: (0, 255, 255), 7: (255, 204, 204), 8: (102, 51, 0), 9: (255, 0, 0), 10: (102, 204, 0),
                  11: (255, 255, 0), 12: (0, 0, 153), CELEBA_HAT: (255, 51, 153)}
CELEBA_FACE_IDS = range(1, 13)
DARK_LENS = 80  # mean grey level (0-255) of the glasses' pixels below which they are sunglasses


@dataclass(frozen=True)
class LabelledPhoto:
    key: str  # SET/relative path: the same on every machine
    split: str  # train / val / test
    image: Path
    labels: Path


@dataclass(frozen=True)
class LabelledFace:
    key: str
    split: str
    image: np.ndarray  # (S, S, 3) uint8 BGR, ArcFace layout
    masks: dict[str, np.ndarray]  # occluder class -> (S, S) bool, the whole occluder inside the crop

    @property
    def clear(self) -> bool:
        """Nothing labelled over the face."""
        return not self.masks


def labelled_photos(kind: str, root: Path) -> list[LabelledPhoto]:
    """Every labelled photo of a set, in a stable order; a ConfigError naming ``root`` if it is not that set."""
    if kind == "celebamaskhq":
        numbered = sorted((p for p in (root / "images").glob("*.jpg") if p.stem.isdigit()), key=lambda p: int(p.stem))
        photos = [LabelledPhoto(f"celebamaskhq/{p.name}", _celeba_split(int(p.stem)), p,
                                root / "labels" / f"{p.stem}.png") for p in numbered]
    elif kind == "maskedfacenet":
        photos = []
        for image in sorted(root.glob("*/*/images/*.jpg")):
            relative = image.relative_to(root).as_posix()
            split = "test" if relative.startswith("testing/") else _hash_split(relative)
            photos.append(LabelledPhoto(f"maskedfacenet/{relative}", split, image,
                                        image.parent.parent / "masks" / f"{image.stem}.png"))
    else:
        raise ConfigError(f"unknown labelled set {kind!r}: expected one of {', '.join(LABELLED_SETS)}")
    if not photos:
        raise ConfigError(f"{root}: no {kind} photos there (see streamer/datagen/labelled_faces.py for its layout)")
    return photos


def _celeba_split(index: int) -> str:
    return "train" if index < 4000 else "val" if index < 4500 else "test"


def _hash_split(relative: str) -> str:
    return "val" if hashlib.sha1(relative.encode()).digest()[0] * 100 // 256 < 12 else "train"


def class_masks(kind: str, image: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Occluder class -> bool mask, from an aligned label map."""
    masks = {}
    if kind == "celebamaskhq":
        glasses = labels == CELEBA_GLASSES
        if glasses.sum() >= 20:
            dark = float(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[glasses].mean()) < DARK_LENS
            masks["sunglasses" if dark else "eyeglasses"] = glasses
        hat = labels == CELEBA_HAT
        if hat.sum() >= 20:
            masks["cap"] = hat
    else:
        mask = (labels & MASKEDFACENET_MASK) > 0
        if mask.sum() >= 20:
            masks["face_mask"] = mask
    return masks


def align_labelled(detector, image: np.ndarray, labels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The most confident face and its label map, both warped to a (size, size) ArcFace-layout crop; None
    without a face. A tight photo is padded by replication (labels too) and searched again, as photos are."""
    found = detector.detect(image)
    if not len(found):
        pad = max(image.shape[:2]) // 2
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        labels = cv2.copyMakeBorder(labels, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        found = detector.detect(image)
        if not len(found):
            return None
    matrix = similarity(found.landmarks[int(found.scores.argmax())], template(size))
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    warped = cv2.warpAffine(labels, matrix, (size, size), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    return crop, warped


def labelled_faces(kind: str, photos: list[LabelledPhoto], detector, size: int,
                   progress: Callable[[str], None] | None = None) -> Iterator[LabelledFace]:
    """The photos' faces, aligned with their occluder masks (photos without a detected face are skipped)."""
    for index, photo in enumerate(photos):
        image = cv2.imread(str(photo.image))
        labels = _read_labels(kind, photo.labels)
        if image is None or labels is None:
            raise ConfigError(f"cannot read {photo.image if image is None else photo.labels}")
        if labels.shape != image.shape[:2]:
            labels = cv2.resize(labels, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
        aligned = align_labelled(detector, image, labels, size)
        if progress and (index + 1) % 500 == 0:
            progress(f"{kind}: {index + 1}/{len(photos)} photos aligned")
        if aligned is None:
            continue
        crop, warped = aligned
        yield LabelledFace(photo.key, photo.split, crop, class_masks(kind, crop, warped))


def _read_labels(kind: str, path: Path) -> np.ndarray | None:
    """A label map as class ids, from the sets' colour PNGs. CelebAMask-HQ's use its own palette
    (CELEBA_COLOURS); MaskedFace-Net's the PASCAL one: id 1 is (128, 0, 0) RGB, id 2 is (0, 128, 0)."""
    colour = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if colour is None:
        return None
    if kind == "maskedfacenet":
        return ((colour[..., 2] > 64).astype(np.uint8) + 2 * (colour[..., 1] > 64)).astype(np.uint8)
    ids = np.zeros(colour.shape[:2], np.uint8)
    for class_id, rgb in CELEBA_COLOURS.items():
        ids[(colour == rgb[::-1]).all(axis=2)] = class_id
    return ids


def celeba_face_pixels(labels_path: Path) -> np.ndarray | None:
    """(H, W) bool: the pixels of a CelebAMask-HQ label map that are the face's own; None if it cannot be read."""
    ids = _read_labels("celebamaskhq", labels_path)
    return None if ids is None else (ids >= CELEBA_FACE_IDS.start) & (ids < CELEBA_FACE_IDS.stop)


def face_free_square(labels_path: Path, photo: np.ndarray) -> np.ndarray | None:
    """The largest square of a CelebAMask-HQ photo holding no pixel of the face (what is left: hair, a hat, the
    neck, clothes and what is behind them), or None where its label map cannot be read."""
    face = celeba_face_pixels(labels_path)
    if face is None or face.shape != photo.shape[:2]:
        return None
    free = cv2.copyMakeBorder((~face).astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    reach = cv2.distanceTransform(free, cv2.DIST_C, 3)[1:-1, 1:-1]  # chessboard: a square of side 2d - 1 fits
    y, x = np.unravel_index(int(np.argmax(reach)), reach.shape)
    half = int(reach[y, x]) - 1
    return np.ascontiguousarray(photo[y - half:y + half + 1, x - half:x + half + 1]) if half > 0 else None


def save_faces(faces: list[LabelledFace], path: Path) -> None:
    """One .npz for a list of labelled faces (a cache: aligning them is the slow part)."""
    names = sorted({name for f in faces for name in f.masks})
    size = faces[0].image.shape[0] if faces else 0
    np.savez_compressed(
        path, keys=np.array([f.key for f in faces]), splits=np.array([f.split for f in faces]),
        images=np.stack([f.image for f in faces]) if faces else np.zeros((0, size, size, 3), np.uint8),
        names=np.array(names),
        masks=np.stack([np.stack([f.masks.get(n, np.zeros((size, size), bool)) for n in names])
                        for f in faces]).astype(bool) if faces and names
        else np.zeros((len(faces), 0, size, size), bool),
    )


def load_faces(path: Path) -> list[LabelledFace]:
    data = np.load(path)
    names = [str(n) for n in data["names"]]
    return [LabelledFace(str(key), str(split), image, {n: m for n, m in zip(names, masks) if m.any()})
            for key, split, image, masks in zip(data["keys"], data["splits"], data["images"], data["masks"])]


def cached_labelled_faces(kind: str, root: Path, detector, size: int, cache: Path,
                          progress: Callable[[str], None] | None = None,
                          splits: tuple[str, ...] = ("train", "val", "test")) -> list[LabelledFace]:
    """A set's aligned labelled faces of ``splits``, from ``cache`` (an .npz) when it is there, else aligned
    and saved there."""
    if cache.is_file():
        return load_faces(cache)
    photos = [p for p in labelled_photos(kind, root) if p.split in splits]
    faces = list(labelled_faces(kind, photos, detector, size, progress))
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial.npz")
    save_faces(faces, partial)
    partial.replace(cache)
    return faces
