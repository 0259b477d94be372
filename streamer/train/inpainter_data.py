"""Training pairs for the inpainter, composed on the fly from a face bank.

Every epoch draws new occluders onto the same faces (sample i of epoch e comes from the random
stream (seed, e, i): a run is reproducible, and no two epochs see the same occlusion). The
validation set is drawn once, from its own stream, so epochs are compared on the same images.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from streamer.datagen.compose import ComposeSettings, compose
from streamer.datagen.face_bank import BankFace
from streamer.datagen.occluders import OccluderLibrary
from streamer.inpaint.masks import grow

# Every training sample hides something: a clean face teaches the inpainter nothing.
TRAINING_COMPOSE = ComposeSettings(clean_share=0.0)
VALIDATION_EPOCH = -1


class ComposedPairs(Dataset):
    """Item i: (occluded, original) as (3, S, S) float32 RGB in [0, 1], and hole (1, S, S) float32."""

    def __init__(self, faces: list[BankFace], library: OccluderLibrary, size: int, seed: int,
                 settings: ComposeSettings = TRAINING_COMPOSE, samples_per_epoch: int | None = None):
        if not faces:
            raise ValueError("no faces to compose training pairs from")
        self.faces, self.library, self.size, self.seed, self.settings = faces, library, size, seed, settings
        # An epoch may visit every face several times, each time with other occluders (a small bank
        # would otherwise make epochs of a second on a GPU, most of it spent starting workers).
        self.samples_per_epoch = samples_per_epoch or len(faces)
        self.epoch = 0
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # per worker: decoded, resized faces

    def __len__(self) -> int:
        return self.samples_per_epoch

    def face(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The bank's aligned face at this dataset's size, and its 5 points."""
        if index not in self._cache:
            face = self.faces[index]
            scale = self.size / face.image().shape[0]
            image = cv2.resize(face.image(), (self.size, self.size), interpolation=cv2.INTER_AREA)
            self._cache[index] = image, face.landmarks * scale
        return self._cache[index]

    def sample(self, index: int, epoch: int):
        image, landmarks = self.face(index % len(self.faces))
        rng = np.random.default_rng([self.seed, epoch + 1, index])  # +1: numpy seeds must be non-negative
        for _ in range(8):  # an occluder can land off the crop; draw again
            sample = compose(image, landmarks, self.library, rng, self.settings)
            hole = hole_of(sample.coverage)
            if hole.mean() > 0.005:
                return sample, hole
        return sample, hole

    def __getitem__(self, index: int):
        sample, hole = self.sample(index, self.epoch)
        return to_tensor(sample.occluded), to_tensor(sample.original), torch.from_numpy(hole[None].astype(np.float32))


def hole_of(coverage: np.ndarray) -> np.ndarray:
    """Every pixel an occluder touched, grown by a pixel: the soft fringe of an occluder's edge is not
    the camera's face either, and the stage grows its segmentation masks the same way."""
    return grow((coverage > 0.1)[None], 1)[0]


def to_tensor(bgr: np.ndarray) -> torch.Tensor:
    """(S, S, 3) uint8 BGR -> (3, S, S) float32 RGB in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1))).float() / 255.0


def to_bgr(tensor: torch.Tensor) -> np.ndarray:
    """(3, S, S) float RGB in [0, 1] -> (S, S, 3) uint8 BGR."""
    return np.ascontiguousarray((tensor.detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0)[:, :, ::-1]
                                 * 255.0 + 0.5).astype(np.uint8))


def validation_batch(dataset: ComposedPairs, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first ``count`` faces with their validation occluders, stacked."""
    items = []
    for i in range(min(count, len(dataset))):
        sample, hole = dataset.sample(i, VALIDATION_EPOCH)
        items.append((to_tensor(sample.occluded), to_tensor(sample.original), torch.from_numpy(hole[None] * 1.0)))
    return tuple(torch.stack([item[k] for item in items]).float() for k in range(3))
