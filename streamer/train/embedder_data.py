"""Training samples for the mask-robust student embedder, composed on the fly from face banks.

Item i is a face of the bank twice: as a camera might see it (occluders of the data engine and camera
faults; some samples with faults only; with ``misalign_share``, cut by landmarks a detector got wrong) and as
it is (the bank's clean photo), plus the face's index, whose teacher embedding is the target of both. No
identity label is used anywhere: the teacher's embedding of the clean face is the only supervision.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from streamer.datagen.compose import ComposeSettings, compose
from streamer.datagen.face_bank import BankFace
from streamer.datagen.misalign import misaligned
from streamer.datagen.occluders import OccluderLibrary
from streamer.embed.hiding import hide_occluders
from streamer.inpaint.masks import grow
from streamer.train.inpainter_data import ComposedPairs, to_tensor

# Most samples hide something; the rest are camera faults alone, so the student also learns that a
# blurred, noisy face without an occluder is still the same face.
STUDENT_COMPOSE = ComposeSettings(clean_share=0.2, degrade_share=0.7)
HIDE_GROWTH = 4  # px: hidden pixels reach 1 to this many beyond the occluder's soft edge
VALIDATION_EPOCH = -1  # the validation occluders' own random stream


class StreamCut:
    """Moves training faces so that the student's fixed cut (the layout's points onto dlib's chip) gives the chip the
    stream's dlib stage cuts: the face as seen by the points of ``seen_points`` (a student of dlib's predictor, as
    ``embedder.student_points``), the clean face by dlib's own predictor's (as the gallery is described)."""

    def __init__(self, seen_points: Path):
        self.seen_points = Path(seen_points)
        self._loaded = None  # per process: dlib objects are not shared with the data workers

    def __getstate__(self) -> dict:  # sent to data workers without its dlib objects (they load their own)
        return {**self.__dict__, "_loaded": None}

    def _predictors(self):
        if self._loaded is None:
            from streamer.embed.dlib_resnet import student_points
            from streamer.train.points import teacher_predictor

            dlib, teacher = teacher_predictor()
            self._loaded = dlib, teacher, student_points(dlib, self.seen_points, "--points")
        return self._loaded

    def _moved(self, bgr: np.ndarray, predictor) -> np.ndarray:
        from streamer.embed.dlib_resnet import crop_points, onto_layout, trusted_points

        size = bgr.shape[0]
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        return onto_layout(bgr, trusted_points(crop_points(self._predictors()[0], predictor, rgb, size)[None], size)[0])

    def seen(self, bgr: np.ndarray) -> np.ndarray:
        return self._moved(bgr, self._predictors()[2])

    def clean(self, bgr: np.ndarray) -> np.ndarray:
        return self._moved(bgr, self._predictors()[1])


class OccludedAndClean(ComposedPairs):
    """Item i: (as seen, clean) as (3, S, S) float32 RGB in [0, 1], and the face's index."""

    def __init__(self, faces: list[BankFace], library: OccluderLibrary, size: int, seed: int,
                 settings: ComposeSettings = STUDENT_COMPOSE, samples_per_epoch: int | None = None,
                 misalign_share: float = 0.0, hide_share: float = 0.0, cut: StreamCut | None = None):
        super().__init__(faces, library, size, seed, settings, samples_per_epoch)
        self.cut = cut  # None: every face cut by the layout's points, as the bank aligned it
        self.misalign_share = misalign_share  # of the faces as seen, those cut by landmarks off as a detector's are
        # Of the occluded faces as seen, those whose occluder pixels are hidden as the stream hides what its
        # segmenter finds (embed/hiding.py); the rest stay as seen, as the faces where the segmenter finds nothing.
        self.hide_share = hide_share

    def seen_and_clean(self, index: int, epoch: int) -> tuple[np.ndarray, np.ndarray, int]:
        face_index = index % len(self.faces)
        image, landmarks = self.face(face_index)
        rng = np.random.default_rng([self.seed, epoch + 1, index])  # +1: numpy seeds must be non-negative
        sample = compose(image, landmarks, self.library, rng, self.settings)
        seen = sample.occluded
        if self.hide_share and sample.instances and rng.random() < self.hide_share:
            # The segmenter's masks are grown by a pixel and miss or overrun an occluder's edge by a few more.
            hidden = grow((sample.coverage > 0.1)[None], int(rng.integers(1, HIDE_GROWTH + 1)))[0]
            seen = hide_occluders(seen, hidden)
        # After the camera faults: the detector finds the landmarks on what the camera saw, then the crop is cut.
        if self.misalign_share and rng.random() < self.misalign_share:
            seen = misaligned(seen, landmarks, rng)[0]
        if self.cut is not None:
            return self.cut.seen(seen), self.cut.clean(image), face_index
        return seen, image, face_index

    def __getitem__(self, index: int):
        seen, clean, face_index = self.seen_and_clean(index, self.epoch)
        return to_tensor(seen), to_tensor(clean), face_index


def validation_set(dataset: OccludedAndClean, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first ``count`` faces with their validation occluders, drawn once: epochs compare on the same images."""
    items = [dataset.seen_and_clean(i, VALIDATION_EPOCH) for i in range(min(count, len(dataset.faces)))]
    return (torch.stack([to_tensor(seen) for seen, _, _ in items]), torch.stack([to_tensor(c) for _, c, _ in items]),
            torch.tensor([i for _, _, i in items]))
