"""The run loop: sources -> batched analysis across streams -> tracks/events -> annotated video."""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from engines import select_device
from engines.device import DeviceUnavailable
from streamer.annotate import annotate
from streamer.config import Config
from streamer.errors import ConfigError, StreamerError
from streamer.progress import ProgressReporter, StreamCounters
from streamer.records import FrameResult
from streamer.sinks.events import JsonLinesEvents
from streamer.sinks.recording import Recording
from streamer.sinks.rtsp_push import RtspPush
from streamer.sources import PyAVSource
from streamer.stages import Stages
from streamer.track.events import TrackEvents
from streamer.web.server import LiveView, StreamStatus

log = logging.getLogger(__name__)
IDLE_WAIT_S = 0.1  # with no frame from any source, wait this long at most for the next one


@dataclass
class RunSummary:
    frames: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    events: int = 0
    videos: list[Path] = field(default_factory=list)  # every file written, segments included
    events_path: Path | None = None
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    stage_ms: dict[str, float] = field(default_factory=dict)  # mean ms per item and stage

    @property
    def total_frames(self) -> int:
        return sum(self.frames.values())

    @property
    def fps(self) -> float:
        return self.total_frames / self.seconds if self.seconds > 0 else 0.0


class StopFlag:
    """Ctrl-C asks for a clean stop (outputs flushed); a second Ctrl-C aborts at once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous = None

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum, frame) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()


def run(config: Config, reporter: ProgressReporter | None = None, banner=print) -> RunSummary:
    if not config.sources:
        raise ConfigError("no sources: add 'sources' to the config or pass --source URI")
    try:
        device = select_device(config.engine.device)
    except DeviceUnavailable as exc:
        raise ConfigError(f"engine.device: {exc}") from None
    stages = Stages.build(config, device)
    for line in stages.describe():
        banner(line)
    frame_ready = threading.Event()
    sources = [PyAVSource(s, config.pipeline.queue_frames, frame_ready) for s in config.sources]
    opened: list[PyAVSource] = []
    try:
        for source in sources:
            source.open()
            opened.append(source)
    except StreamerError:
        for source in opened:
            source.stop()
        raise
    return _run_opened(config, stages, sources, frame_ready, reporter or ProgressReporter(enabled=False))


def _run_opened(
    config: Config, stages: Stages, sources: list[PyAVSource], frame_ready: threading.Event, reporter: ProgressReporter
) -> RunSummary:
    out = config.output
    summary = RunSummary()
    writers: dict[str, Recording] = {}
    pushers: dict[str, RtspPush] = {}
    events = JsonLinesEvents(out.dir / "events.jsonl") if out.events else None
    trackers = {
        s.name: TrackEvents(s.name, config.pipeline.track_min_hits, config.pipeline.track_max_misses) for s in sources
    }
    counters = {s.name: StreamCounters() for s in sources}
    live_view = LiveView(config.web, [s.name for s in sources]).start() if config.web.enabled else None
    if live_view:
        log.warning("live view: %s", live_view.url)
    last_status = 0.0
    last_result: dict[str, FrameResult] = {}
    frame_size: dict[str, tuple[int, ...]] = {}
    started = time.monotonic()
    with StopFlag() as stop:
        for source in sources:
            source.start()
        try:
            while not stop.event.is_set():
                # Clear before reading: a frame that lands after the reads sets the event again, so the
                # wait below returns at once. No source is ever waited on alone (a dead camera costs nothing).
                frame_ready.clear()
                frames = [f for f in (s.read(0) for s in sources if not s.exhausted) if f is not None]
                if not frames:
                    if all(s.exhausted for s in sources):
                        break
                    frame_ready.wait(IDLE_WAIT_S)
                    continue
                for result in stages.analyze(frames):
                    name = result.frame.stream
                    if frame_size.setdefault(name, result.frame.image.shape) != result.frame.image.shape:
                        # A camera switched resolution: boxes of the old geometry mean nothing now.
                        log.warning("source %r: frame size changed to %s; tracks reset", name, result.frame.image.shape)
                        frame_size[name] = result.frame.image.shape
                        for event in trackers[name].close(last_result.get(name)):
                            if events:
                                events.emit(event)
                    for event in trackers[name].update(result):
                        if events:
                            events.emit(event)
                    if out.video or live_view or out.rtsp_push:
                        annotated = annotate(result, out.show_reconstruction, hud=_hud(result, counters[name]))
                        if out.video:
                            writer = writers.get(name) or _open_writer(writers, config, result, sources)
                            writer.write(annotated)
                        if live_view:
                            live_view.publish(name, annotated)
                        if out.rtsp_push:
                            pusher = pushers.get(name) or _open_pusher(pushers, config, result, sources)
                            pusher.push(annotated)
                    counters[name].frame_done(result.frame.decoded_at)
                    last_result[name] = result
                reporter.update(sources, counters)
                if live_view and time.monotonic() - last_status > 0.5:
                    live_view.update_status([stream_status(s, counters[s.name]) for s in sources])
                    last_status = time.monotonic()
            summary.interrupted = stop.event.is_set()
        finally:
            summary.seconds = time.monotonic() - started
            for source in sources:
                source.stop()
            for name, tracker in trackers.items():
                for event in tracker.close(last_result.get(name)):
                    if events:
                        events.emit(event)
            for writer in writers.values():
                writer.close()
            for pusher in pushers.values():
                pusher.close()
            if live_view:
                live_view.close()
            if events:
                events.close()
            reporter.update(sources, counters, force=True)
            reporter.finish()
    summary.frames = {name: c.frames_out for name, c in counters.items()}
    summary.videos = [path for w in writers.values() for path in w.paths]
    summary.events = events.count if events else 0
    summary.events_path = events.path if events else None
    summary.errors = [s.error for s in sources if s.error]
    summary.stage_ms = {
        k: 1000 * v / max(stages.times.items[k], 1) for k, v in stages.times.seconds.items()
    }
    return summary


def _open_writer(writers: dict, config: Config, result: FrameResult, sources: list[PyAVSource]) -> Recording:
    name = result.frame.stream
    source = next(s for s in sources if s.name == name)
    height, width = result.frame.image.shape[:2]
    out = config.output
    writers[name] = Recording(out.dir, name, source.fps, (width, height), out.codec, out.crf, out.segment_s)
    return writers[name]


def _open_pusher(pushers: dict, config: Config, result: FrameResult, sources: list[PyAVSource]) -> RtspPush:
    name = result.frame.stream
    source = next(s for s in sources if s.name == name)
    height, width = result.frame.image.shape[:2]
    pushers[name] = RtspPush(config.output.rtsp_push.replace("{stream}", name), name, source.fps, (width, height))
    return pushers[name]


def stream_status(source: PyAVSource, counters: StreamCounters) -> StreamStatus:
    stats = source.stats
    if source.connected.is_set():
        state = "decoding"
    elif source.finished.is_set():
        state = "failed" if source.error else "ended"
    else:
        state = "connecting"
    width, height = source.size or (None, None)
    return StreamStatus(
        name=source.name, live=source.live, connected=source.connected.is_set(), state=state,
        decoded=stats.decoded, frames_out=counters.frames_out, dropped=stats.dropped, reconnects=stats.reconnects,
        stalls=stats.stalls, decode_errors=stats.decode_errors, connect_failures=stats.connect_failures,
        fps_in=counters.fps_in(stats.decoded), fps_out=counters.fps_out, latency_ms=counters.mean_latency_ms,
        last_error=source.error or source.last_error, width=width, height=height,
    )


def _hud(result: FrameResult, counters: StreamCounters) -> str:
    return f"{result.frame.stream}  frame {result.frame.index}  {counters.fps_out:.1f} fps"
