"""Events per second over a sliding window (frames in, frames out)."""

from __future__ import annotations

import collections
import threading
import time


class RateMeter:
    """Ticked by one thread (a decoder, the pipeline), read by others (status line, live view)."""

    def __init__(self, window_s: float = 5.0):
        self.window_s = window_s
        self._times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            while now - self._times[0] > self.window_s:
                self._times.popleft()

    @property
    def rate(self) -> float:
        """Events per second over the window up to now: 0 once the events stop for the window's length."""
        now = time.monotonic()
        with self._lock:
            while self._times and now - self._times[0] > self.window_s:
                self._times.popleft()
            if len(self._times) < 2:
                return 0.0
            return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-6)
