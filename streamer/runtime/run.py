"""A run, from start to clean stop: models, store, run folder, sources, sinks, the loop, and the report.

Order matters for operators: the models are built (and warmed up) first, touching no data; then the
store is opened (enrolment of ``gallery.dir``, retention); then the run gets its own folder, so no
earlier run's files are touched; then cameras connect and the loop turns. Whatever ends the run (the
sources, SIGINT, SIGTERM, a full disk) every output is closed the same way: tracks ended, videos
finished and playable, events delivered, and ``run.json`` says how it ended.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from engines.device import usable_cores
from streamer import __version__
from streamer.config import Config, SourceConfig, redacted_data
from streamer.errors import ConfigError, OutputError, StreamerError
from streamer.identify import Identification, open_identification
from streamer.latency import LatencyRecorder
from streamer.progress import ProgressReporter
from streamer.records import StreamStatus
from streamer.runtime.ahead import DetectionAhead
from streamer.runtime.completeness import missing_frames
from streamer.runtime.control import StreamControl
from streamer.runtime.emit import Emitter
from streamer.runtime.loop import Loop
from streamer.runtime.run_folder import RunFolder
from streamer.runtime.stop import StopSignals
from streamer.runtime.streams import StreamState
from streamer.runtime.summary import RunSummary
from streamer.sinks import event_sinks, frame_sinks
from streamer.sinks.base import EventSink, FrameSinkFactory
from streamer.sources import ThreadedSource, make_source
from streamer.stages import Stages
from streamer.store.database import StoreUnavailable, say_unavailable
from streamer.store.runs import RunRegistry
from streamer.store.sightings import SightingStore

log = logging.getLogger(__name__)
FLUSH_AT_END_S = 10.0  # how long a run's end waits for a store's server to take the events still waiting
SOURCE_STOP_S = 2.0  # how long a clean stop waits for the sources' threads (a camera mid-connect ends later)


def run(config: Config, reporter: ProgressReporter | None = None, banner: Callable[[str], None] = print,
        extra_frame_sinks: Sequence[FrameSinkFactory] = (), stop: StopSignals | None = None,
        extra_event_sinks: Sequence[EventSink] = (), control: StreamControl | None = None) -> RunSummary:
    """Processes the config's sources until they end or a stop is asked for (SIGINT or SIGTERM: a clean
    stop; a second one aborts). ``extra_frame_sinks``: more per-stream frame sinks (benchmarks). ``stop``:
    how a run started off the main thread (a cluster worker) is asked to stop. ``extra_event_sinks``: more
    sinks for the committed events (a cluster worker's, to the cluster's one event stream). ``control``: streams
    added and removed while it runs (made here with web.control; a cluster worker passes its own)."""
    if config.web.control and control is None:
        control = StreamControl()
    if not config.sources and control is None:
        raise ConfigError("no sources: add 'sources' to the config, pass --source URI, or enable web.control to "
                          "add cameras while it runs")
    with stop or StopSignals() as stop:
        device = config.engine.select_device()
        # The detector runs on its own thread beside the per-face stages (runtime/ahead.py): on a CPU it
        # takes half the cores, and the per-face models all of them, as they get both whenever it waits.
        detector_threads = max(1, (device.cpu_threads or usable_cores()) // 2)
        stages = Stages.build(config, device, replace(device, cpu_threads=detector_threads))
        for line in stages.describe():
            banner(line)
        with open_identification(config, stages.detector, stages.embedder) as identification:
            banner(identification.describe())
            session = _Run(config, stages, identification, stop, reporter or ProgressReporter(enabled=False),
                           list(extra_frame_sinks), list(extra_event_sinks), control)
            return session.execute()


class _Run:
    def __init__(self, config: Config, stages: Stages, identification: Identification, stop: StopSignals,
                 reporter: ProgressReporter, extra_frame_sinks: list[FrameSinkFactory],
                 extra_event_sinks: list[EventSink], control: StreamControl | None):
        self.config, self.stages, self.identification = config, stages, identification
        self.stop, self.reporter, self.extra_frame_sinks = stop, reporter, extra_frame_sinks
        self.extra_event_sinks = extra_event_sinks
        self.summary = RunSummary(store_path=identification.path)
        self.registry = RunRegistry(identification.conn)
        # Filled before the live view serves; with web.control the loop adds streams (and marks removed ones) later.
        self.streams: dict[str, StreamState] = {}
        self.sources: list[ThreadedSource] = []  # every source of the run, those removed too
        self.control = control
        if control is not None:
            control.bind(self._make_source, lambda: set(self.streams))
        self.frame_ready = threading.Event()  # set by every source after every frame: the one thing detection waits on
        self.started_wall = time.time()

    def execute(self) -> RunSummary:
        try:
            return self._execute()
        finally:
            if self.control:
                self.control.close()  # nothing more is added; a request not carried out is answered so

    def _execute(self) -> RunSummary:
        if self.stop.event.is_set():  # stopped while the models loaded: nothing ran, nothing is written
            self.summary.stopped_by = self.stop.by
            return self.summary
        live_view = self._live_view()  # binds its port first: a port in use stops the run before anything opens
        try:
            folder = RunFolder.create(self.config.output.dir)
        except BaseException:
            if live_view:
                live_view.close()
            raise
        self.summary.run_id, self.summary.run_dir = folder.id, folder.path
        folder.write_manifest(self._manifest("running"))
        folder.link_latest()
        self.registry.start(folder.id)
        started = False
        try:
            sources = self._open_sources()
            started = True
            self._run(folder, sources, live_view)
        except StreamerError as exc:  # a source that cannot be opened, ...: said in run.json too
            self.summary.errors.append(str(exc))
            raise
        finally:
            if live_view:
                live_view.close()
            outcome = self.summary.outcome if started else "failed"
            folder.write_manifest(self._manifest(outcome))
            try:
                self.registry.finish(outcome)
            except OutputError as exc:  # the run's own outputs are closed already; the store will say "killed"
                log.error("%s", exc)
        return self.summary

    def _tick(self) -> None:
        """The run's periodic store work: its heartbeat, and the gallery as other runs changed it."""
        try:
            self.registry.beat()
        except StoreUnavailable as exc:
            say_unavailable(exc, "the run's heartbeat waits")
        self.identification.sync.poll()
        if self.control:
            self.control.apply(self._add_stream, self._remove_stream)

    def _live_view(self):
        if not self.config.web.enabled:
            return None
        from streamer.web.server import LiveView

        console = None
        if self.config.web.console:
            from streamer.web.console import open_console

            console = open_console(self.config, self.stages.embedder.model_id, self.identification.sync.wake,
                                   self.identification.resolver.base_threshold)
        try:
            # list() of a dict's values runs without releasing the GIL: safe beside the loop adding a stream.
            return LiveView(self.config.web, lambda: [s.status() for s in list(self.streams.values()) if not s.removed],
                            self.control, console)
        except OSError as exc:
            if console is not None:
                console.close()
            web = self.config.web
            raise ConfigError(f"web.port: cannot listen on {web.host}:{web.port}: {exc.strerror or exc}") from None

    def _make_source(self, config: SourceConfig) -> ThreadedSource:
        return make_source(config, self.config.pipeline.queue_frames, self.frame_ready)

    def _open_sources(self) -> list[ThreadedSource]:
        sources = [self._make_source(s) for s in self.config.sources]
        opened: list[ThreadedSource] = []
        try:
            for source in sources:
                source.open()
                opened.append(source)
        except StreamerError:
            for source in opened:
                source.stop()
            raise
        return sources

    def _run(self, folder: RunFolder, sources: list[ThreadedSource], live_view) -> None:
        config, stages = self.config, self.stages
        self.sources = list(sources)
        self.sinks = sinks = [*frame_sinks(config.output, folder.path, live_view), *self.extra_frame_sinks]
        self.folder = folder
        emitter = Emitter(SightingStore(self.identification.conn, folder.id),
                          [*event_sinks(config.output, folder.path, config.alerts), *self.extra_event_sinks],
                          config.store.buffer_events)
        for source in sources:
            self.streams[source.name] = StreamState(source, config, self.identification.resolver, stages, sinks)
        if live_view:  # serving once every stream is listed: the first page already shows them all
            live_view.start()
            log.warning("live view: %s", live_view.url)
        self.loop = loop = Loop(stages, self.streams, emitter, self.reporter, self.stop, self._tick)
        started, aborted = time.monotonic(), False
        try:
            if not self.stop.event.is_set():
                for source in sources:
                    source.start()
                # Batches detection may run ahead: files, one burst of per-face analysis; a camera whose newest
                # frame wins, 2, so its frames are not kept waiting (they are dropped at the source instead).
                keeps_all = all(s.config.keeps_every_frame for s in sources)
                ahead = max(2, config.pipeline.reanalyse_every) if keeps_all else 2
                with DetectionAhead(sources, self.frame_ready, stages, self.stop.event, ahead,
                                    keep_running=self.control is not None) as detected:
                    self.detection = detected
                    loop.run(detected)
        except OutputError as exc:
            self.summary.fatal = str(exc)
        except KeyboardInterrupt:  # a second signal: stop now, without the last events or the webhook's drain
            aborted = True
        finally:
            self.summary.seconds = time.monotonic() - started
            self._close(self.sources, emitter, loop, aborted)
            self.summary.stopped_by = self.stop.by
            self._report(self.sources, emitter)

    def _add_stream(self, source: ThreadedSource) -> StreamStatus:
        """On the loop's thread (web.control): an opened source joins the run."""
        stream = StreamState(source, self.config, self.identification.resolver, self.stages, self.sinks)
        self.streams[source.name] = stream
        self.sources.append(source)
        self.detection.add_source(source)
        source.start()
        log.warning("stream %r added (%s)", source.name, source.display_uri)
        self.folder.write_manifest(self._manifest("running"))
        return stream.status()

    def _remove_stream(self, name: str) -> StreamStatus | None:
        """On the loop's thread (web.control): the stream stops, its tracks end and its recording is finished.
        None if no such stream runs."""
        stream = self.streams.get(name)
        if stream is None or stream.removed:
            return None
        stream.source.request_stop()
        self.detection.remove_source(name)
        self.loop.end_stream(stream)
        stream.removed = True
        log.warning("stream %r removed", name)
        self.folder.write_manifest(self._manifest("running"))
        return stream.status()

    def _close(self, sources: list[ThreadedSource], emitter: Emitter, loop: Loop, aborted: bool) -> None:
        """Every output closed, whatever stopped the run; an error closing one does not keep the others open."""
        for source in sources:
            source.request_stop()
        deadline = time.monotonic() + SOURCE_STOP_S  # one wait for all of them, not one each
        for source in sources:
            source.join(max(0.0, deadline - time.monotonic()))
        problems: list[str] = []
        if not aborted and not emitter.failed:
            try:
                for stream in self.streams.values():
                    if not stream.ended:
                        emitter.emit(stream.end())
                emitter.flush(wait_s=FLUSH_AT_END_S)
            except OutputError as exc:
                problems.append(str(exc))
        for stream in self.streams.values():
            try:
                stream.close()
            except Exception as exc:  # noqa: BLE001 - reported below, in one line
                problems.append(str(exc))
        problems += emitter.close(drain=not aborted)
        if problems and not self.summary.fatal:
            self.summary.fatal = problems[0]
        for problem in problems[1:]:
            log.error("%s", problem)
        self.reporter.update(loop.statuses, force=True)
        self.reporter.finish()

    def _report(self, sources: list[ThreadedSource], emitter: Emitter) -> None:
        summary, stages, streams = self.summary, self.stages, self.streams
        summary.frames = {name: s.counters.frames_out for name, s in streams.items()}
        summary.dropped = {s.name: s.stats.dropped for s in sources}
        latency = LatencyRecorder()
        for stream in streams.values():
            latency.merge(stream.counters.latency)
        summary.latency_ms = latency.summary_ms()
        summary.videos = [path for stream in streams.values() for path in stream.files()]
        summary.events = emitter.count
        summary.outputs = emitter.outcomes()
        summary.errors += [s.error for s in sources if s.error]
        if summary.fatal:
            summary.errors.append(summary.fatal)
        if not summary.stopped_by and not summary.fatal:
            summary.warnings = [line for s in sources for line in missing_frames(s)]
        summary.inpainted, summary.reused = stages.reconstructions.inpainted, stages.reconstructions.reused
        summary.stage_ms = {str(k): v for k, v in stages.times.ms_per_item().items()}

    def _manifest(self, outcome: str) -> dict:
        summary = self.summary
        return {
            "run": summary.run_id, "outcome": outcome, "streamer": __version__, "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": _iso(self.started_wall), "ended": None if outcome == "running" else _iso(time.time()),
            "stopped_by": summary.stopped_by, "store": str(summary.store_path),
            "frames": summary.frames, "events": summary.events,
            "videos": [str(p.relative_to(summary.run_dir)) if summary.run_dir in p.parents else str(p)
                       for p in summary.videos],
            "errors": summary.errors, "warnings": summary.warnings,
            "config": redacted_data(self.config),
            "streams_changed": [{**change, "at": _iso(change["at"])} for change in self.control.changes]
            if self.control else None,
        }


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).isoformat(timespec="seconds")
