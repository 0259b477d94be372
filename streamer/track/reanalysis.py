"""Which tracked faces go through the per-face stages (occluder segmentation, embedding) this frame.

A followed face changes little from one frame to the next: its aligned crop keeps the same layout,
so the occlusion found a few frames ago (a mask in crop coordinates) still holds. A confirmed
track's face is analysed on its first ``warmup`` frames, and on every frame after them while the
track has no name (a person or a pseudo-identity), up to ``unnamed_limit`` analyses, so a face is
named about as early as with analysis on every frame. Then it is analysed every ``every`` frames
(DeepStream's secondary re-inference interval). Tracks born together stay due together, which
keeps the segmenter's batches full (one call has a fixed cost of several milliseconds). In between,
the face carries its last occlusion, and its reconstruction is reused by the reconstruction cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamer.records import Face, Occlusion
from streamer.track.memory import TrackMemory


@dataclass
class _Analysed:
    frame: int  # the last frame analysed
    count: int  # analyses so far
    occlusion: Occlusion


class ReanalysisSchedule:
    def __init__(self, every: int, warmup: int = 3, unnamed_limit: int = 30):
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.every, self.warmup, self.unnamed_limit = every, warmup, unnamed_limit
        self._tracks = TrackMemory()  # (stream, track ID) -> _Analysed
        self.analysed = 0
        self.carried = 0

    def carry(self, stream: str, frame: int, face: Face) -> bool:
        """Gives ``face`` its track's last occlusion and returns True if it is not due for analysis."""
        if self.every == 1 or face.track_id < 0:
            return False
        entry = self._tracks.get((stream, face.track_id))
        if (entry is None or entry.count < self.warmup or frame - entry.frame >= self.every
                or (not face.track_named and entry.count < self.unnamed_limit)):
            return False
        face.occlusion = entry.occlusion
        self.carried += 1
        return True

    def done(self, stream: str, frame: int, face: Face) -> None:
        """Records the analysis of ``face`` on ``frame``."""
        self.analysed += 1
        if face.track_id < 0:
            return
        key = (stream, face.track_id)
        entry = self._tracks.get(key)
        self._tracks[key] = _Analysed(frame, entry.count + 1 if entry else 1, face.occlusion)

    def forget_track(self, stream: str, track_id: int) -> None:
        self._tracks.forget_track(stream, track_id)

    def forget_stream(self, stream: str) -> None:
        self._tracks.forget_stream(stream)

    def __len__(self) -> int:
        return len(self._tracks)
