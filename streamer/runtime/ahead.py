"""Reads the sources and detects faces on a thread of its own, a few batches ahead of the per-face stages.

On a CPU a small network gains little from a second thread (SCRFD on a 128 px region: 1.1x on 2
threads), so two stages running side by side do more than one stage at a time on every core: the
detector takes half the cores, the per-face models all of them (they get both whenever detection
waits). On a GPU the detector's work overlaps the per-face batches. The hand-off holds
few batches: the per-face stages come in bursts (a track's faces are analysed every few frames, see
track/reanalysis.py), and through a burst detection keeps working on the frames after it instead of
waiting, up to ``depth`` batches ahead.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from streamer.records import FrameResult, Stage
from streamer.sources import ThreadedSource

IDLE_WAIT_S = 0.1  # with no frame from any source, wait this long at most for the next one
_END = object()


@dataclass(frozen=True)
class Detected:
    """What the loop takes from detection: a batch (empty when nothing came within the idle time) and the
    streams whose last frame was in it or before it."""

    results: list[FrameResult]
    exhausted: tuple[str, ...] = ()


class DetectionAhead:
    """``keep_running``: the run takes cameras while it runs (web.control), so it goes on when every source
    has ended, waiting for the next one."""

    def __init__(self, sources: list[ThreadedSource], frame_ready: threading.Event, stages,
                 stop: threading.Event, depth: int = 2, keep_running: bool = False):
        self.frame_ready, self.stages, self.stop, self.keep_running = frame_ready, stages, stop, keep_running
        # Replaced, never changed in place: the detection thread reads whichever list is current.
        self.sources = list(sources)
        self._handoff: queue.Queue = queue.Queue(maxsize=depth)
        self._closing = threading.Event()
        self._reported: set[str] = set()  # streams already announced exhausted
        self._thread = threading.Thread(target=self._run, name="detect", daemon=True)

    def __enter__(self) -> DetectionAhead:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()
        self._thread.join()

    def add_source(self, source: ThreadedSource) -> None:
        self.sources = [*self.sources, source]
        self.frame_ready.set()

    def remove_source(self, name: str) -> None:
        """Detection reads the stream no more (a frame of it may still be in a batch on its way)."""
        self.sources = [s for s in self.sources if s.name != name]

    def batches(self, idle_s: float = 0.5) -> Iterator[Detected]:
        """Detected batches in order, until every source is exhausted or ``stop`` is set, and an empty one
        whenever ``idle_s`` passes without any (so the loop keeps its status true when frames stop); an
        error on the detection thread is raised here."""
        while True:
            try:
                item = self._handoff.get(timeout=idle_s)
            except queue.Empty:
                yield Detected([])
                continue
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            detected, detected_at = item
            waited = time.monotonic() - detected_at
            for result in detected.results:
                result.stage_s[Stage.QUEUE] += waited
            yield detected

    def _run(self) -> None:
        try:
            while not self.stop.is_set() and not self._closing.is_set():
                # Clear before reading: a frame that lands after the reads sets the event again, so the
                # wait below returns at once. No source is ever waited on alone (a dead camera costs nothing).
                self.frame_ready.clear()
                sources = self.sources
                frames = [f for f in (s.read(0) for s in sources if not s.exhausted) if f is not None]
                exhausted = self._newly_exhausted(sources)
                if frames or exhausted:
                    self._put((Detected(self.stages.detect(frames) if frames else [], exhausted), time.monotonic()))
                    continue
                if all(s.exhausted for s in sources) and not self.keep_running:
                    break
                self.frame_ready.wait(IDLE_WAIT_S)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the consuming thread
            self._put(exc)
        self._put(_END)

    def _newly_exhausted(self, sources: list[ThreadedSource]) -> tuple[str, ...]:
        names = tuple(s.name for s in sources if s.name not in self._reported and s.exhausted)
        self._reported.update(names)
        return names

    def _put(self, item) -> None:
        while not self._closing.is_set():
            try:
                self._handoff.put(item, timeout=IDLE_WAIT_S)
                return
            except queue.Full:
                continue
