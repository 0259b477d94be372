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
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: VideoFrame | None = None
        self.dropped = 0

    def put(self, frame: VideoFrame, stop: threading.Event) -> None:
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify()

    def get(self, timeout: float) -> VideoFrame | None:
        with self._cond:
            if self._frame is None:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            return frame

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def __len__(self) -> int:
        return int(self._frame is not None)


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
