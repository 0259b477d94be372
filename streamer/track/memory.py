"""What the per-face stages remember about each followed face between frames, keyed by (stream, track ID)."""

from __future__ import annotations


class TrackMemory(dict):
    """Entries with a ``seen`` frame. Those of tracks unseen for more than ``horizon`` frames (ended or
    lost) are dropped, so the memory never grows without bound; one sweep per stream and frame, however
    many of its faces are recorded."""

    def __init__(self, horizon: int):
        super().__init__()
        self.horizon = horizon
        self._swept: dict[str, int] = {}

    def forget_unseen(self, stream: str, frame: int) -> None:
        if self._swept.get(stream) == frame:
            return
        self._swept[stream] = frame
        for key in [k for k, entry in self.items() if k[0] == stream and frame - entry.seen > self.horizon]:
            del self[key]
