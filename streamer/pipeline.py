"""The run loop: sources -> batched analysis across streams -> tracks/events -> annotated video."""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from engines import select_device
from engines.device import DeviceUnavailable, usable_cores
from streamer.config import Config
from streamer.detect.ahead import DetectionAhead
from streamer.errors import ConfigError, StreamerError
from streamer.latency import LatencyRecorder
from streamer.progress import ProgressReporter, StreamCounters
from streamer.records import FrameResult, TrackEvent
from streamer.sinks.annotated import AnnotatedVideo
from streamer.sinks.events import JsonLinesEvents
from streamer.sinks.webhook import WebhookEvents
from streamer.sources import ThreadedSource, make_source
from streamer.stages import Stages
from streamer.store.sightings import SightingStore
from streamer.track.events import TrackEvents
from streamer.web.server import LiveView, StreamStatus

log = logging.getLogger(__name__)


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
    inpainted: int = 0  # faces inpainted afresh
    reused: int = 0  # faces that kept their track's reconstruction
    store_path: Path | None = None
    webhook: dict[str, int] = field(default_factory=dict)  # delivered, dropped, failures, undelivered
    dropped: dict[str, int] = field(default_factory=dict)  # per stream: frames replaced before analysis (live)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # per stage, all streams: p50/p95/p99

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
        device = select_device(config.engine.device, config.engine.cpu_threads)
    except DeviceUnavailable as exc:
        raise ConfigError(f"engine.device: {exc}") from None
    # The detector runs on its own thread beside the per-face stages (detect/ahead.py): on a CPU it
    # takes half the cores, and the per-face models all of them, as they get both whenever it waits.
    detector_threads = max(1, (device.cpu_threads or usable_cores()) // 2)
    stages = Stages.build(config, device, replace(device, cpu_threads=detector_threads))
    try:
        for line in stages.describe():
            banner(line)
        frame_ready = threading.Event()
        sources = [make_source(s, config.pipeline.queue_frames, frame_ready) for s in config.sources]
        opened: list[ThreadedSource] = []
        try:
            for source in sources:
                source.open()
                opened.append(source)
        except StreamerError:
            for source in opened:
                source.stop()
            raise
        return _run_opened(config, stages, sources, frame_ready, reporter or ProgressReporter(enabled=False))
    finally:
        stages.store.close()


class EventOutputs:
    """Where events go, in this order: the store (committed first: a sighting is never lost), the
    JSON-lines file, the webhook."""

    def __init__(self, config: Config, stages: Stages):
        self.sightings = SightingStore(stages.store)
        self.file = JsonLinesEvents(config.output.dir / "events.jsonl") if config.output.events else None
        self.webhook = WebhookEvents(config.output.webhook) if config.output.webhook else None
        self.count = 0

    def emit(self, events: list[TrackEvent]) -> None:
        self.sightings.record(events)
        for event in events:
            if self.file:
                self.file.emit(event.fields)
            if self.webhook:
                self.webhook.emit(event.fields)
        self.count += len(events)

    def close(self) -> None:
        if self.file:
            self.file.close()
        if self.webhook:
            self.webhook.close()


class StreamOutputs:
    """Everything one stream's results go to: its tracks and events, recording, live view and push."""

    def __init__(self, source: ThreadedSource, config: Config, events: EventOutputs, live_view,
                 resolver):
        self.source, self.config, self.events, self.live_view = source, config, events, live_view
        # A folder's images are stills, not a video: each face is reported in each image, on its own.
        self.stills = source.config.kind == "folder"
        pipeline = config.pipeline
        min_hits, max_misses = (1, 0) if self.stills else (pipeline.track_min_hits, pipeline.track_max_misses)
        self.tracker = TrackEvents(source.name, resolver, min_hits, max_misses,
                                   None if self.stills else pipeline.track_reattach_similarity,
                                   config.output.event_embeddings, stills=self.stills)
        self.counters = StreamCounters()
        out = config.output
        self.video = AnnotatedVideo(source, config, live_view, self._frame_done) \
            if out.video or live_view or out.rtsp_push else None
        self.last_result: FrameResult | None = None
        self._shape: tuple[int, ...] | None = None

    def associate(self, result: FrameResult) -> None:
        """Track IDs for this frame's faces, before the per-face stages (which reuse work by track)."""
        image = result.frame.image
        if self.stills:
            self._emit(self.tracker.close(self.last_result))
        elif self._shape is not None and image.shape != self._shape:
            # A camera switched resolution: boxes of the old geometry mean nothing now.
            log.warning("source %r: frame size changed to %s; tracks reset", self.source.name, image.shape)
            self._emit(self.tracker.close(self.last_result))
        self._shape = image.shape
        self.tracker.associate(result)

    def handle(self, result: FrameResult) -> None:
        """Events and output for a frame whose faces ``associate`` gave track IDs."""
        started = time.perf_counter()
        self._emit(self.tracker.update(result))
        result.stage_s["identify"] = time.perf_counter() - started
        if self.video:
            self.video.submit(result, _hud(result, self.counters))
        else:
            self._frame_done(result)
        self.last_result = result

    def _frame_done(self, result: FrameResult) -> None:
        self.counters.frame_done(result.frame.decoded_at, result.stage_s)

    def status(self) -> StreamStatus:
        return stream_status(self.source, self.counters)

    def close(self) -> None:
        self._emit(self.tracker.close(self.last_result))
        if self.video:
            self.video.close()

    def _emit(self, events: list[TrackEvent]) -> None:
        self.events.emit(events)


def _run_opened(
    config: Config,
    stages: Stages,
    sources: list[ThreadedSource],
    frame_ready: threading.Event,
    reporter: ProgressReporter,
) -> RunSummary:
    summary = RunSummary()
    events = EventOutputs(config, stages)
    live_view = LiveView(config.web, [s.name for s in sources]).start() if config.web.enabled else None
    if live_view:
        log.warning("live view: %s", live_view.url)
    outputs = {s.name: StreamOutputs(s, config, events, live_view, stages.resolver) for s in sources}
    counters = {name: o.counters for name, o in outputs.items()}
    last_status = 0.0
    started = time.monotonic()
    with StopFlag() as stop:
        for source in sources:
            source.start()
        try:
            # Batches detection may run ahead: files, one burst of per-face analysis; a camera whose newest
            # frame wins, 2, so its frames are not kept waiting (they are dropped at the source instead).
            keeps_all = all(s.config.keeps_every_frame for s in sources)
            ahead = max(2, config.pipeline.reanalyse_every) if keeps_all else 2
            with DetectionAhead(sources, frame_ready, stages, stop.event, ahead) as detected:
                for results in detected.batches():
                    stages.track(results, lambda r: outputs[r.frame.stream].associate(r))
                    stages.complete(results)
                    for result in results:
                        outputs[result.frame.stream].handle(result)
                    reporter.update(sources, counters)
                    if live_view and time.monotonic() - last_status > 0.5:
                        live_view.update_status([o.status() for o in outputs.values()])
                        last_status = time.monotonic()
            summary.interrupted = stop.event.is_set()
        finally:
            summary.seconds = time.monotonic() - started
            for source in sources:
                source.stop()
            for output in outputs.values():
                output.close()
            if live_view:
                live_view.close()
            events.close()
            reporter.update(sources, counters, force=True)
            reporter.finish()
    summary.frames = {name: c.frames_out for name, c in counters.items()}
    summary.dropped = {s.name: s.stats.dropped for s in sources}
    latency = LatencyRecorder()
    for c in counters.values():
        latency.merge(c.latency)
    summary.latency_ms = latency.summary_ms()
    summary.videos = [path for o in outputs.values() if o.video and o.video.recording
                      for path in o.video.recording.paths]
    summary.events = events.count
    summary.events_path = events.file.path if events.file else None
    summary.store_path = Path(stages.store.execute("PRAGMA database_list").fetchone()[2])
    if events.webhook:
        hook = events.webhook
        summary.webhook = {"delivered": hook.delivered, "dropped": hook.dropped, "failures": hook.failures,
                           "undelivered": hook.backlog}
    summary.errors = [s.error for s in sources if s.error]
    summary.inpainted, summary.reused = stages.reconstructions.inpainted, stages.reconstructions.reused
    summary.stage_ms = {
        k: 1000 * v / max(stages.times.items[k], 1) for k, v in stages.times.seconds.items()
    }
    return summary


def stream_status(source: ThreadedSource, counters: StreamCounters) -> StreamStatus:
    stats = source.stats
    width, height = source.size or (None, None)
    return StreamStatus(
        name=source.name, live=source.live, connected=source.connected.is_set(), state=source.state,
        decoded=stats.decoded, frames_out=counters.frames_out, dropped=stats.dropped, reconnects=stats.reconnects,
        stalls=stats.stalls, decode_errors=stats.decode_errors, skipped_damaged=stats.skipped_damaged,
        connect_failures=stats.connect_failures,
        fps_in=source.fps_in, fps_out=counters.fps_out, latency_ms=counters.mean_latency_ms,
        last_error=source.error or source.last_error, width=width, height=height,
    )


def _hud(result: FrameResult, counters: StreamCounters) -> str:
    return f"{result.frame.stream}  frame {result.frame.index}  {counters.fps_out:.1f} fps"
