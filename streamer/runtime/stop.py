"""A clean stop on request: Ctrl-C (SIGINT) and SIGTERM (what ``docker stop`` and systemd send) ask
the run to stop; it then closes every output (tracks ended, videos finished, events delivered) and
reports. A second signal aborts at once."""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.by: str | None = None  # the signal that asked, e.g. "SIGTERM"
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        # Only the main thread may install handlers (a run started from another thread stops by ``request``).
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        self._previous.clear()

    def request(self, by: str) -> None:
        self.by = self.by or by
        self.event.set()

    def _handle(self, signum, frame) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt  # the second signal: stop now
        self.request(signal.Signals(signum).name)
