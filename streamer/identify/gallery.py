"""An in-memory gallery enrolled from a folder of images at start-up.

Layout: ``DIR/<identity>/*.jpg`` (several photos per person) or
``DIR/<identity>.jpg``. Each photo goes through the stream's own detection,
alignment and embedding, so gallery and stream embeddings are comparable.
The persistent SQLite gallery of the re-identification issue replaces the folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
from pydantic import Field

from streamer.align import align_face
from streamer.config_base import ExistingDir, StrictModel
from streamer.errors import StreamerError
from streamer.records import Match

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class GalleryConfig(StrictModel):
    dir: ExistingDir | None = Field(None, description="folder of known faces: DIR/<name>/*.jpg or DIR/<name>.jpg")
    threshold: float | None = Field(
        None, ge=-1, le=1, description="cosine similarity needed to name a face (default: the embedder's own)"
    )


class Gallery:
    def __init__(self, names: list[str], embeddings: np.ndarray, model_id: str, threshold: float):
        self.names = names
        self.embeddings = embeddings  # (k, D) float32, L2-normalised, one per identity
        self.model_id = model_id
        self.threshold = threshold

    def __len__(self) -> int:
        return len(self.names)

    def match(self, embeddings: np.ndarray, weights: np.ndarray | None = None) -> list[Match]:
        """The best identity for each (n, D) embedding, or identity None under the threshold.

        ``weights`` (n, D), where given, restrict the cosine to the dimensions the camera saw
        (see ``FaceEmbedder.visible_dims``); rows of ones give the plain cosine.
        """
        if len(embeddings) == 0:
            return []
        if not self.names:
            return [Match(None, 0.0)] * len(embeddings)
        if weights is None:
            scores = embeddings @ self.embeddings.T
        else:
            numerator = (embeddings * weights) @ self.embeddings.T
            probe_norm = np.sqrt(((embeddings**2) * weights).sum(axis=1, keepdims=True))
            gallery_norm = np.sqrt(weights @ (self.embeddings**2).T)
            scores = numerator / np.maximum(probe_norm * gallery_norm, 1e-12)
        best = scores.argmax(axis=1)
        return [
            Match(self.names[b] if scores[i, b] >= self.threshold else None, float(scores[i, b]))
            for i, b in enumerate(best)
        ]

    @classmethod
    def enroll_folder(
        cls, folder: Path | None, detector, embedder, crop_size: int, threshold: float | None
    ) -> Gallery:
        if threshold is None:
            threshold = embedder.default_threshold
        if folder is None:
            return cls([], np.zeros((0, 0), np.float32), embedder.model_id, threshold)
        photos: dict[str, list[Path]] = {}
        for entry in sorted(folder.iterdir()):
            if entry.is_dir():
                photos[entry.name] = sorted(p for p in entry.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            elif entry.suffix.lower() in IMAGE_SUFFIXES:
                photos.setdefault(entry.stem, []).append(entry)
        names, vectors = [], []
        for name, paths in photos.items():
            crops = [c for c in (_largest_face_crop(p, detector, crop_size) for p in paths) if c is not None]
            if not crops:
                log.warning("gallery: no face found for %r in %s", name, folder)
                continue
            mean = embedder.embed(np.stack(crops)).mean(axis=0)
            names.append(name)
            vectors.append(mean / max(np.linalg.norm(mean), 1e-12))
        if photos and not names:
            raise StreamerError(f"gallery.dir: no face could be enrolled from {folder}")
        embeddings = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, 0), np.float32)
        return cls(names, embeddings, embedder.model_id, threshold)


def _largest_face_crop(path: Path, detector, crop_size: int) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise StreamerError(f"gallery.dir: cannot read image {path}")
    from streamer.detect import detect_in_photo

    found, image = detect_in_photo(detector, image)
    if len(found) == 0:
        return None
    areas = (found.boxes[:, 2] - found.boxes[:, 0]) * (found.boxes[:, 3] - found.boxes[:, 1])
    return align_face(image, found.landmarks[int(areas.argmax())], crop_size).image
