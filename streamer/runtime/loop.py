"""The run loop, read top to bottom: detect → track → analyse → identify → emit → render.

Detection runs on a thread of its own a few batches ahead (runtime/ahead.py); a batch holds what
every stream had ready. Tracking and identity are per stream (runtime/streams.py); the analysis of
the faces (occluders, reconstruction, embeddings) is batched across every stream (stages.py); events
go to the store and the event sinks (runtime/emit.py); each stream's frames are drawn and written on
its own render thread. Every stage is timed the same way (``StageTimes.timing``), per batch and
charged to each of its frames. When no frame comes for a while the loop still turns, so the status
line tells the truth about dead cameras.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from streamer.progress import ProgressReporter
from streamer.records import FrameResult, Stage, StreamStatus, TrackEvent
from streamer.runtime.ahead import DetectionAhead
from streamer.runtime.emit import Emitter
from streamer.runtime.stop import StopSignals
from streamer.runtime.streams import StreamState
from streamer.stages import Stages

log = logging.getLogger(__name__)


class Loop:
    def __init__(self, stages: Stages, streams: dict[str, StreamState], emitter: Emitter, reporter: ProgressReporter,
                 stop: StopSignals, on_tick: Callable[[], None] = lambda: None):
        self.stages, self.streams, self.emitter, self.reporter = stages, streams, emitter, reporter
        self.stop, self.on_tick = stop, on_tick
        self._stopping_said = False

    def run(self, detected: DetectionAhead) -> None:
        """Until every source is exhausted or a stop is asked for (detection then ends its batches)."""
        for item in detected.batches():
            if item.results:
                self.process(item.results)
            for name in item.exhausted:
                self.end_stream(self.streams[name])
            self.tick()

    def process(self, batch: list[FrameResult]) -> None:
        # A stream removed while frames of it were on their way has ended: those frames are dropped.
        batch = [result for result in batch if not self._stream(result).ended]
        if not batch:
            return
        times = self.stages.times
        events: list[TrackEvent] = []
        with times.timing(Stage.TRACK, batch):
            for result in batch:
                events += self._stream(result).track(result)
        self.stages.analyse(batch)
        with times.timing(Stage.IDENTIFY, batch):
            for result in batch:
                events += self._stream(result).identify(result)
        with times.timing(Stage.EMIT, batch):
            self.emitter.emit(events)
        for result in batch:
            self._stream(result).submit(result)

    def end_stream(self, stream: StreamState) -> None:
        """A stream's last frame was processed (or it was removed): its tracks end and its recording is finished
        now. A stream that ended already is left as it is."""
        if stream.ended:
            return
        self.emitter.emit(stream.end())
        stream.close()

    def tick(self) -> None:
        """Between batches, and while no frame comes: tracks of cameras that went down end, the status line
        is redrawn, and the run's other periodic work is done."""
        if self.stop.event.is_set() and not self._stopping_said:
            self._stopping_said = True  # said here, not in the signal handler: logging there could deadlock
            log.warning("stopping on %s: finishing the outputs (%s again to abort)", self.stop.by,
                        "Ctrl-C" if self.stop.by == "SIGINT" else self.stop.by)
        for stream in self.streams.values():
            if stream.lost_its_tracks():
                self.emitter.emit(stream.close_tracks())
        self.emitter.flush()  # events kept while the store's server was away, when no new one comes
        self.reporter.update(self.statuses)
        self.on_tick()

    def statuses(self) -> list[StreamStatus]:
        return [stream.status() for stream in self.streams.values() if not stream.removed]

    def _stream(self, result: FrameResult) -> StreamState:
        return self.streams[result.frame.stream]
