"""Training samples for the mask-robust student embedder, composed on the fly from face banks.

Item i is a face of the bank twice: as a camera might see it (occluders of the data engine and camera
faults; some samples with faults only; with ``misalign_share``, cut by landmarks a detector got wrong) and as
it is (the bank's clean photo), plus the face's index, whose teacher embedding is the target of both. No
identity label is used anywhere: the teacher's embedding of the clean face is the only supervision.
"""

from __future__ import annotations

import numpy as np
import torch

from streamer.datagen.compose import ComposeSettings, compose
from streamer.datagen.face_bank import BankFace
from streamer.datagen.misalign import misaligned
from streamer.datagen.occluders import OccluderLibrary
from streamer.train.inpainter_data import ComposedPairs, to_tensor

# Most samples hide something; the rest are camera faults alone, so the student also learns that a
# blurred, noisy face without an occluder is still the same face.
STUDENT_COMPOSE = ComposeSettings(clean_share=0.2, degrade_share=0.7)
VALIDATION_EPOCH = -1  # the validation occluders' own random stream


class OccludedAndClean(ComposedPairs):
    """Item i: (as seen, clean) as (3, S, S) float32 RGB in [0, 1], and the face's index."""

    def __init__(self, faces: list[BankFace], library: OccluderLibrary, size: int, seed: int,
                 settings: ComposeSettings = STUDENT_COMPOSE, samples_per_epoch: int | None = None,
                 misalign_share: float = 0.0):
        super().__init__(faces, library, size, seed, settings, samples_per_epoch)
        self.misalign_share = misalign_share  # of the faces as seen, those cut by landmarks off as a detector's are

    def seen_and_clean(self, index: int, epoch: int) -> tuple[np.ndarray, np.ndarray, int]:
        face_index = index % len(self.faces)
        image, landmarks = self.face(face_index)
        rng = np.random.default_rng([self.seed, epoch + 1, index])  # +1: numpy seeds must be non-negative
        seen = compose(image, landmarks, self.library, rng, self.settings).occluded
        # After the camera faults: the detector finds the landmarks on what the camera saw, then the crop is cut.
        if self.misalign_share and rng.random() < self.misalign_share:
            seen = misaligned(seen, landmarks, rng)[0]
        return seen, image, face_index

    def __getitem__(self, index: int):
        seen, clean, face_index = self.seen_and_clean(index, self.epoch)
        return to_tensor(seen), to_tensor(clean), face_index


def validation_set(dataset: OccludedAndClean, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first ``count`` faces with their validation occluders, drawn once: epochs compare on the same images."""
    items = [dataset.seen_and_clean(i, VALIDATION_EPOCH) for i in range(min(count, len(dataset.faces)))]
    return (torch.stack([to_tensor(seen) for seen, _, _ in items]), torch.stack([to_tensor(c) for _, c, _ in items]),
            torch.tensor([i for _, _, i in items]))
