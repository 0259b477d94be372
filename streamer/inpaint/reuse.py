"""Per-track reuse of reconstructions: a face is re-inpainted only when its occlusion changed, or
every ``every_frames`` frames of its track.

Crops are in the canonical aligned layout, so a reconstruction made a few frames ago still fits the
face while the occluder stays where it was. A cached reconstruction is reused only while the face's
hidden area is almost all inside the area it reconstructed, and overlaps it well; anything else
(the mask moved, grew or changed class) is inpainted afresh.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamer.records import Face
from streamer.track.memory import TrackMemory


@dataclass
class _Entry:
    frame: int  # the frame it was inpainted on
    mask: np.ndarray  # (S, S) bool, the occlusion it reconstructed
    classes: tuple[str, ...]
    reconstruction: np.ndarray  # (S, S, 3) uint8
    changed: np.ndarray  # (S, S) bool, the pixels the inpainter replaced (the mask, grown by the inpainter)


class ReconstructionCache:
    def __init__(self, every_frames: int = 5, min_iou: float = 0.7, min_inside: float = 0.97):
        if every_frames < 1:
            raise ValueError(f"every_frames must be at least 1, got {every_frames}")
        self.every_frames, self.min_iou, self.min_inside = every_frames, min_iou, min_inside
        self._entries = TrackMemory()  # (stream, track ID) -> _Entry
        self.reused = 0
        self.inpainted = 0

    def lookup(self, stream: str, frame: int, face: Face) -> np.ndarray | None:
        """The reconstruction of this face's crop from its track's cached one, or None to inpaint afresh."""
        if self.every_frames == 1 or face.track_id < 0:
            return None
        entry = self._entries.get((stream, face.track_id))
        if entry is None or frame - entry.frame >= self.every_frames or face.occlusion.classes != entry.classes:
            return None
        mask = face.occlusion.mask
        if mask.shape != entry.mask.shape or not mask.any():
            return None
        overlap = (mask & entry.mask).sum()
        if overlap / mask.sum() < self.min_inside or overlap / (mask | entry.mask).sum() < self.min_iou:
            return None
        self.reused += 1
        return np.where((mask | entry.changed)[..., None], entry.reconstruction, face.crop.image)

    def store(self, stream: str, frame: int, face: Face) -> None:
        self.inpainted += 1
        if face.track_id >= 0:
            changed = (face.reconstruction != face.crop.image).any(axis=2)
            self._entries[(stream, face.track_id)] = _Entry(frame, face.occlusion.mask, face.occlusion.classes,
                                                            face.reconstruction, changed)

    def forget_track(self, stream: str, track_id: int) -> None:
        self._entries.forget_track(stream, track_id)

    def forget_stream(self, stream: str) -> None:
        self._entries.forget_stream(stream)

    def __len__(self) -> int:
        return len(self._entries)
