"""The two bounded hand-offs between a decoding thread and the pipeline.

Live cameras use ``LatestFrameSlot``: a new frame replaces an unread one, the
replaced frame is counted as dropped, so slow inference never builds latency.
Files use ``FrameQueue``: a bounded queue that blocks the decoder
(back-pressure), so every frame is processed.
"""

from __future__ import annotations

import collections
import threading

from streamer.records import VideoFrame


class LatestFrameSlot:
    """The newest ``capacity`` frames (1: only the newest); a new frame pushes out the oldest unread one,
    which is counted as dropped. Putting never waits."""

    def __init__(self, capacity: int = 1) -> None:
        self._cond = threading.Condition()
        self._frames: collections.deque[VideoFrame] = collections.deque()
        self._capacity = max(1, capacity)
        self.dropped = 0

    def put(self, frame: VideoFrame, stop: threading.Event) -> None:
        with self._cond:
            if len(self._frames) >= self._capacity:
                self._frames.popleft()
                self.dropped += 1
            self._frames.append(frame)
            self._cond.notify_all()

    def get(self, timeout: float) -> VideoFrame | None:
        with self._cond:
            if not self._frames:
                self._cond.wait(timeout)
            frame = self._frames.popleft() if self._frames else None
            self._cond.notify_all()
            return frame

    def wait_empty(self, timeout: float) -> bool:
        """Waits until every frame was taken (at most ``timeout`` s); whether it was."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._frames, timeout)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._frames)


class FrameQueue:
    def __init__(self, maxsize: int) -> None:
        self._cond = threading.Condition()
        self._frames: collections.deque[VideoFrame] = collections.deque()
        self._maxsize = maxsize
        self.dropped = 0  # never increases: back-pressure instead of drops

    def put(self, frame: VideoFrame, stop: threading.Event) -> None:
        with self._cond:
            # Waits in short steps so a stop request never leaves the decoder stuck on a full queue.
            while len(self._frames) >= self._maxsize and not stop.is_set():
                self._cond.wait(0.1)
            if not stop.is_set():
                self._frames.append(frame)
                self._cond.notify_all()

    def get(self, timeout: float) -> VideoFrame | None:
        with self._cond:
            if not self._frames:
                self._cond.wait(timeout)
            if not self._frames:
                return None
            frame = self._frames.popleft()
            self._cond.notify_all()
            return frame

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._frames)
