"""What every source shares: a named thread that produces frames into a bounded buffer.

The pipeline sees only this interface (``open``, ``start``, ``read``, ``stop``, ``state`` and the
counters), so a camera, a file, a webcam and a folder of images are handled alike. Subclasses
implement ``_produce`` and hand each image to ``_deliver``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from streamer.config import SourceConfig
from streamer.rate import RateMeter
from streamer.records import VideoFrame
from streamer.redaction import redact_url
from streamer.sources.buffers import FrameQueue, LatestFrameSlot

log = logging.getLogger(__name__)


@dataclass
class SourceStats:
    decoded: int = 0
    dropped: int = 0
    decode_errors: int = 0  # damage seen: packets that failed to decode, or that decoded concealed
    skipped_damaged: int = 0  # frames not delivered because of damage (up to the next key frame)
    reconnects: int = 0  # successful connections after the first
    stalls: int = 0  # reads that timed out on a connected stream
    connect_failures: int = 0


class ThreadedSource:
    def __init__(self, config: SourceConfig, queue_frames: int = 8, frame_ready: threading.Event | None = None):
        """``frame_ready``, if given, is set after every frame: one event the consumer can wait on
        for all its sources, instead of waiting on each in turn."""
        self.config = config
        self.name = config.name
        self.display_uri = redact_url(config.uri)
        self._buffer = FrameQueue(queue_frames) if config.keeps_every_frame else LatestFrameSlot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = SourceStats()
        self.error: str | None = None  # why producing ended, when it ended on a failure
        self.last_error: str | None = None  # the latest connection or stream problem (redacted), for status
        self.connected = threading.Event()
        self.finished = threading.Event()  # the producing thread has ended
        self.fps: float = 0.0
        self.total_frames: int | None = None
        self.total_exact = False  # total_frames is the container's own count, not an estimate from its duration
        self.sessions = 0  # connections that delivered (a camera's reconnects add to it)
        self.last_frame_time: float | None = None  # wall clock of the newest frame
        self.last_frame_at: float | None = None  # monotonic time of the newest frame
        self.size: tuple[int, int] | None = None
        self._index = 0
        self._pace_origin: tuple[float, float] | None = None  # (monotonic time, pts) of the first paced frame
        self._frame_ready = frame_ready
        self._input_rate = RateMeter()

    @property
    def live(self) -> bool:
        return self.config.is_live

    @property
    def fps_in(self) -> float:
        """Frames produced per second over the last 5 s (the camera's real rate, not its nominal one)."""
        return self._input_rate.rate

    @property
    def state(self) -> str:
        """decoding; connecting (before the first connection has failed); down (lost or never reached, being
        retried); ended; or failed."""
        if self.connected.is_set():
            return "decoding"
        if self.finished.is_set():
            return "failed" if self.error else "ended"
        return "down" if self.sessions or self.stats.connect_failures else "connecting"

    def open(self) -> None:
        """Checks what can be checked at start-up (files exist and decode), raising ``SourceError``."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"source-{self.name}", daemon=True)
        self._thread.start()

    def read(self, timeout: float) -> VideoFrame | None:
        """The next frame, or None if none arrived within ``timeout`` seconds."""
        frame = self._buffer.get(timeout)
        self.stats.dropped = self._buffer.dropped
        return frame

    @property
    def exhausted(self) -> bool:
        """No more frames will come: the producer ended and everything buffered was read."""
        return self.finished.is_set() and len(self._buffer) == 0

    def stop(self, timeout: float = 2.0) -> None:
        """Asks the thread to end and waits at most ``timeout`` s."""
        self.request_stop()
        self.join(timeout)

    def request_stop(self) -> None:
        """Asks the thread to end, without waiting: many sources are asked at once, then waited for together."""
        self._stop.set()
        self._buffer.wake()

    def join(self, timeout: float) -> None:
        """Waits at most ``timeout`` s for the thread to end. A thread blocked inside a library call ends when
        that call times out; it is a daemon thread and holds no lock the caller needs, so no one waits for it."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            self._release()

    # -- the producing thread ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._produce()
        finally:
            self._release()
            self.connected.clear()
            self.finished.set()
            self._buffer.wake()
            if self._frame_ready is not None:
                self._frame_ready.set()

    def _produce(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Frees what the thread holds open (called from it at its end, or from stop())."""

    def _deliver(self, image: np.ndarray, pts: float | None, image_file: str | None = None) -> None:
        if self.config.realtime and pts is not None:
            self._pace(pts)
        frame = VideoFrame(self.name, self._index, np.ascontiguousarray(image), pts, time.time(), time.monotonic(),
                           image_file, self.sessions)
        self._index += 1
        self.stats.decoded += 1
        self._input_rate.tick(frame.decoded_at)
        self.last_frame_time, self.last_frame_at = frame.wall_time, frame.decoded_at
        self._buffer.put(frame, self._stop)
        if self._frame_ready is not None:
            self._frame_ready.set()

    @property
    def _enough_frames(self) -> bool:
        return bool(self.config.max_frames and self._index >= self.config.max_frames)

    def _pace(self, pts: float) -> None:
        """Waits until this frame's time has come, measured from the first frame (files as simulated cameras)."""
        if self._pace_origin is None or pts < self._pace_origin[1]:  # first frame, or the file looped
            self._pace_origin = (time.monotonic(), pts)
        due = self._pace_origin[0] + (pts - self._pace_origin[1])
        self._stop.wait(max(0.0, due - time.monotonic()))

    def _note(self, message: str, first_failure: bool = True) -> None:
        # The first failure of a run of failures is a warning; repeats are logged quietly.
        self.last_error = message
        log.log(logging.WARNING if first_failure else logging.INFO, "%s", message)
