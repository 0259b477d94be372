"""One worker of a cluster: a Ray actor that runs the ordinary runtime (streamer/runtime/run.py) for its share
of the cameras, so each camera's tracks, identity evidence and batches stay in one process.

Ray restarts a worker whose process or machine was lost, with the same arguments, on a machine that has
room: the new process opens the same cameras (they back off and reconnect like any source) and the same
store, which ends the lost run's tracks (store/runs.py). Nothing here watches processes: Ray does.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
from pathlib import Path

from streamer.progress import ProgressReporter
from streamer.records import StreamStatus

log = logging.getLogger(__name__)
RESTART_AFTER_S = 60.0  # a run that failed after running this long is restarted (a new process); sooner, not


class StatusCollector(ProgressReporter):
    """The run's per-stream statuses as the loop last saw them, for ``status()``: what the terminal line would
    have said, without a terminal."""

    def __init__(self, every_s: float = 0.2) -> None:
        super().__init__(enabled=False)
        self._statuses: list[StreamStatus] = []
        self._lock = threading.Lock()
        self._every_s, self._taken = every_s, 0.0

    def update(self, statuses, force: bool = False) -> None:
        # The loop offers statuses after every batch: a snapshot a few times a second is all the driver reads.
        now = time.monotonic()
        if not force and now - self._taken < self._every_s:
            return
        self._taken = now
        snapshot = statuses()
        with self._lock:
            self._statuses = snapshot

    def finish(self) -> None:
        pass

    def latest(self) -> list[StreamStatus]:
        with self._lock:
            return list(self._statuses)


def worker_config(data: dict, name: str, sources: list[dict]) -> dict:
    """A worker's own config: the cluster's, with its share of the cameras, its own output folder (two workers
    on one machine must not share a run folder's ``latest`` link), no live view of its own (the driver's shows
    every camera) nor webhook or MQTT (the hub delivers every worker's events), its models on as many threads as the
    cores Ray reserved for it, and no cluster."""
    output = dict(data.get("output") or {})
    output["dir"] = str(Path(output.get("dir") or "out") / name)
    output["webhook"] = output["mqtt"] = None  # the cluster's hub delivers every worker's events (cluster/events.py)
    web = {**(data.get("web") or {}), "enabled": False, "control": False}  # the driver takes the requests
    engine = dict(data.get("engine") or {})
    if not engine.get("cpu_threads"):  # the cores Ray reserved for it, not every core of a shared machine
        engine["cpu_threads"] = max(1, int((data.get("cluster") or {}).get("cpus_per_worker") or 1))
    # The hub raises the alerts, over every worker's events.
    return {**data, "sources": sources, "output": output, "web": web, "engine": engine, "cluster": None, "alerts": []}


class StreamWorker:
    """Made a Ray actor by the driver (``ray.remote(StreamWorker)``): starts its run at once. ``ledger``: where
    the driver keeps each worker's cameras as they are now (cameras are added and removed while the cluster
    runs, web.control): a worker Ray restarts takes those, not the ones it was first given. ``takes_cameras``: the
    cluster's web.control is on."""

    def __init__(self, config_data: dict, name: str, hub=None, ledger=None, takes_cameras: bool = False):
        from streamer.config import parse_config
        from streamer.runtime.control import StreamControl
        from streamer.runtime.stop import StopSignals

        self.name, self.hub = name, hub
        if ledger is not None:
            import ray

            try:
                assigned = ray.get(ledger.assignment.remote(name), timeout=30)
            except (ray.exceptions.RayError, TimeoutError) as exc:  # the driver's machine is in trouble
                log.warning("%s: the cluster's ledger did not answer (%s): running the cameras first given",
                            name, type(exc).__name__)
                assigned = None
            if assigned is not None:
                config_data = {**config_data, "sources": assigned}
        self.config = parse_config(config_data, origin=f"cluster worker {name}")  # registers its secrets here too
        # Taking cameras while it runs (the cluster's web.control), its run goes on when its cameras have ended.
        self.control = StreamControl() if takes_cameras else None
        self.stop = StopSignals()
        self.collector = StatusCollector()
        self.started = time.time()
        self.summary = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"run-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from streamer.errors import StreamerError
        from streamer.redaction import redact
        from streamer.runtime.run import run

        try:
            from streamer.cluster.events import HubSink

            self.summary = run(self.config, reporter=self.collector, banner=lambda line: log.info("%s", line),
                               stop=self.stop, extra_event_sinks=[HubSink(self.hub, self.name)] if self.hub else [],
                               control=self.control)
        except StreamerError as exc:
            self.error = redact(str(exc))
        except Exception as exc:  # noqa: BLE001 - said in status(), one line, like the CLI says it
            self.error = f"internal: {type(exc).__name__}: {redact(str(exc))}"
        failed = self.error or (self.summary is not None and self.summary.fatal)
        if failed and not self.stop.event.is_set() and time.time() - self.started >= RESTART_AFTER_S:
            # It ran a while, then failed (the store away for longer than its buffer, a disk filled): a new
            # process, which Ray starts, may fare better. One failing at once would only fail again: it stays
            # failed, and status() says why.
            log.error("%s: %s; exiting so that Ray restarts it", self.name, failed)
            os._exit(1)

    def status(self) -> dict:
        """Where this worker runs and how each of its cameras is doing, as plain data."""
        import ray

        context = ray.get_runtime_context()
        summary = self.summary
        if self._thread.is_alive():
            state = "running"
        elif self.error or (summary is not None and summary.fatal):
            state = "failed"
        else:
            state = "ended"
        return {
            "worker": self.name, "state": state, "pid": os.getpid(), "host": socket.gethostname(),
            "node": context.get_node_id(), "ip": ray.util.get_node_ip_address(), "started": self.started,
            "cameras": [s.name for s in self.config.sources],
            "streams": [dataclasses.asdict(s) for s in self.collector.latest()],
            "error": self.error or (summary.fatal if summary is not None else None),
            "events": summary.events if summary is not None else None,
            "frames": summary.total_frames if summary is not None else None,
            "seconds": round(summary.seconds, 3) if summary is not None else None,  # the loop's, models loaded
            "run_dir": str(summary.run_dir) if summary is not None and summary.run_dir else None,
        }

    def add_stream(self, entry: dict) -> dict:
        """A camera joins this worker's run: {"code": 201 (running) or 202 (being added), "status"}, or {"code":
        4xx, "error"} (plain data: an exception would reach the driver wrapped in Ray's)."""
        return self._control(lambda: self.control.add(entry), 201)

    def remove_stream(self, name: str) -> dict:
        return self._control(lambda: self.control.remove(name), 200)

    def _control(self, call, done_code: int) -> dict:
        from streamer.redaction import redact
        from streamer.runtime.control import ControlError

        if self.control is None:
            return {"code": 405, "error": "this cluster does not take cameras while it runs (web.control)"}
        try:
            status, applied = call()
        except ControlError as exc:
            return {"code": exc.status, "error": redact(str(exc))}
        return {"code": done_code if applied else 202, "status": dataclasses.asdict(status) if status else None}

    def finish(self, timeout_s: float = 60.0) -> dict:
        """Asks the run to stop (a clean stop: tracks ended, videos finished, events delivered) and waits."""
        self.stop.request("cluster stop")
        self._thread.join(timeout_s)
        return self.status()
