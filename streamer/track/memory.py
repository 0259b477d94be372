"""What the per-face stages remember about each followed face between frames, keyed by (stream, track ID)."""

from __future__ import annotations


class TrackMemory(dict):
    """Per-track entries. The run's track and stream hooks forget them (a track ended, joined a lost
    track, or its stream ended, went down or changed resolution), so the memory never outgrows the
    tracks that are open."""

    def forget_track(self, stream: str, track_id: int) -> None:
        self.pop((stream, track_id), None)

    def forget_stream(self, stream: str) -> None:
        for key in [k for k in self if k[0] == stream]:
            del self[key]
