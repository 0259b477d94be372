"""``streamer run --cluster``: the driver. It joins the Ray cluster, splits the cameras into shares, starts
one worker actor per share (Ray places them, spread over the machines, and restarts a lost one elsewhere),
then asks every worker how its cameras are doing until they end or a stop is asked for.

What the driver knows (each worker's cameras, state, restarts, and its streams' rates) is kept at every look
in a small named actor, the ledger, which ``streamer cluster status`` reads from any machine of the cluster,
and in OUTPUT_DIR/cluster.json, which is what is left after the run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from streamer.cluster.events import EventHub
from streamer.cluster.worker import StreamWorker, worker_config
from streamer.config import Config
from streamer.errors import ConfigError
from streamer.progress import ProgressReporter
from streamer.records import StreamStatus
from streamer.redaction import redact
from streamer.runtime.run_folder import RunFolder
from streamer.runtime.stop import StopSignals

log = logging.getLogger(__name__)

NAMESPACE = "streamer"
WORKER_PREFIX = "streamer-worker-"
LEDGER = "streamer-cluster"
HUB = "streamer-events"
FINISH_S = 60.0  # how long a clean stop waits for the workers to close their outputs
FAST_LOOK_S = 0.25  # how often a worker that is starting or coming back is looked at
SILENT_S = 3.0  # a worker that Ray has not reported lost, silent this long after a question: its cameras read down


@dataclass
class WorkerView:
    """The driver's view of one worker: its latest answer, and what the driver saw happen to it."""

    name: str
    cameras: list[str]
    status: dict | None = None
    restarts: int = 0  # times Ray brought it back in a new process
    unanswered_since: float | None = None  # the driver asked and has no answer yet (lost, or being restarted)
    pending: object = None  # the status call in flight
    asked_at: float | None = None  # when that call was made: silence counts from the question, not from a look

    @property
    def coming_back(self) -> bool:
        """Starting, restarting, or running with a camera that has not yet put a frame through."""
        status = self.status
        if self.unanswered_since is not None or status is None or status.get("state") == "restarting":
            return True
        return status.get("state") == "running" and (len(status.get("streams", [])) < len(self.cameras) or any(
            s["frames_out"] == 0 for s in status["streams"]))

    @property
    def done(self) -> bool:
        return self.status is not None and self.status["state"] in ("ended", "failed", "lost")

    def as_dict(self, now: float) -> dict:
        status = self.status or {}
        waiting = None if self.unanswered_since is None else round(now - self.unanswered_since, 1)
        return {"worker": self.name, "cameras": self.cameras, "restarts": self.restarts,
                "state": status.get("state", "starting"), "unanswered_s": waiting,
                **{k: status.get(k) for k in ("pid", "host", "ip", "node", "error", "events", "frames", "seconds",
                                              "run_dir")},
                "streams": status.get("streams", [])}


class ClusterLedger:
    """The driver's latest view of the cluster, for ``streamer cluster status``, and each worker's cameras as
    they are now, for a worker Ray restarts (made a Ray actor by the driver)."""

    def __init__(self) -> None:
        self.state: dict = {}
        self.assignments: dict[str, list[dict]] = {}

    def put(self, state: dict) -> None:
        self.state = state

    def get(self) -> dict:
        return self.state

    def assign(self, worker: str, sources: list[dict]) -> None:
        self.assignments[worker] = sources

    def assignment(self, worker: str) -> list[dict] | None:
        return self.assignments.get(worker)


@dataclass
class ClusterSummary:
    workers: list[dict] = field(default_factory=list)
    stopped_by: str | None = None
    seconds: float = 0.0
    run_dir: Path | None = None  # the driver's: every worker's events in one events.jsonl
    outputs: list[str] = field(default_factory=list)  # the event sinks' outcome lines
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[dict]:
        return [w for w in self.workers if w["state"] in ("failed", "lost")]


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("cluster: running on Ray needs it installed: pip install 'streamer[cluster]'") from None
    return ray


def connect(address: str):
    """Joins the Ray cluster at ``address`` as a driver; a one-line error when there is none."""
    ray = import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    _check_reachable(address)
    try:
        ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING, log_to_driver=True,
                 configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ConfigError(f"cluster.address: no Ray cluster at {address} ({reason}); start one with "
                          "'ray start --head' and give its address") from None
    return ray


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Ray retries an unreachable head for a minute or more: a closed port is said at once instead."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # auto, or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(f"cluster.address: no Ray cluster at {address} ({exc.strerror or exc}); start one with "
                          "'ray start --head' and give its address") from None


def worker_count(config: Config, resources: dict) -> int:
    cluster = config.cluster
    if cluster.gpus_per_worker:
        room = math.floor(resources.get("GPU", 0) / cluster.gpus_per_worker + 1e-9)
        unit = f"{resources.get('GPU', 0):g} GPUs, a worker needs {cluster.gpus_per_worker:g} (cluster.gpus_per_worker)"
    else:
        room = math.floor(resources.get("CPU", 0) / cluster.cpus_per_worker + 1e-9)
        unit = f"{resources.get('CPU', 0):g} CPUs, a worker needs {cluster.cpus_per_worker:g} (cluster.cpus_per_worker)"
    if room < 1:
        raise ConfigError(f"cluster: the Ray cluster has {unit}")
    # Taking cameras while it runs (web.control), every worker there is room for has a use.
    cameras = len(config.sources) if not config.web.control else math.inf
    if cluster.workers is not None:
        wanted = min(cluster.workers, cameras)
        if wanted > room:
            log.warning("cluster: %d workers asked (cluster.workers), room for %d now (%s): the others wait for "
                        "room", wanted, room, unit)
    else:
        wanted = min(room, cameras)
    return max(1, int(wanted))


def shares(sources: list, workers: int) -> list[list]:
    """Cameras dealt out in turn: shares differ by one camera at most."""
    return [sources[i::workers] for i in range(workers)]


def run_cluster(config: Config, reporter: ProgressReporter | None = None) -> ClusterSummary:
    if not config.sources and not config.web.control:
        raise ConfigError("no sources: add 'sources' to the config, pass --source URI, or enable web.control to "
                          "add cameras while it runs")
    cluster = config.cluster
    ray = connect(cluster.address)
    try:
        return _Driver(ray, config, reporter or ProgressReporter(enabled=False)).execute()
    finally:
        ray.shutdown()


class _Driver:
    def __init__(self, ray, config: Config, reporter: ProgressReporter):
        self.ray, self.config, self.reporter = ray, config, reporter
        self.cluster = config.cluster
        self.out = Path(config.output.dir)
        self.views: list[WorkerView] = []
        self.actors: list = []
        self.assignments: dict[str, list[dict]] = {}  # each worker's cameras (config entries) as they are now
        self.control = ClusterControl(self) if config.web.control else None

    def execute(self) -> ClusterSummary:
        ray, cluster = self.ray, self.cluster
        taken = [n for n in ray.util.list_named_actors(all_namespaces=True)
                 if isinstance(n, dict) and n.get("namespace") == NAMESPACE and n["name"].startswith(WORKER_PREFIX)]
        if taken or self._named(LEDGER):
            raise ConfigError(f"cluster: another streamer run is using the Ray cluster at {cluster.address} "
                              f"({(taken[0]['name'] if taken else LEDGER)} is there)")
        live_view = self._live_view()  # its port first: a port in use stops the run before anything starts
        try:
            return self._execute(live_view)
        finally:
            if live_view is not None:
                live_view.close()

    def _execute(self, live_view) -> ClusterSummary:
        ray, cluster = self.ray, self.cluster
        # On the driver's machine, as the hub: a worker Ray restarts after losing another machine reads its cameras
        # from it, so it must not have been on the machine lost.
        self.ledger = ray.remote(ClusterLedger).options(name=LEDGER, namespace=NAMESPACE, num_cpus=0,
                                                        scheduling_strategy=self._here()).remote()
        count = worker_count(self.config, ray.cluster_resources())
        data = self.config.model_dump(mode="json")
        self.folder = RunFolder.create(self.out)
        self.folder.link_latest()
        self.hub = self._hub(data["output"], data.get("alerts") or [])
        actor_class = ray.remote(StreamWorker)
        for index, share in enumerate(shares(data["sources"], count)):
            name = f"{WORKER_PREFIX}{index}"
            self.assignments[name] = share
            self.ledger.assign.remote(name, share)
            # A few calls at once: a status question is answered while a camera is being added.
            self.actors.append(actor_class.options(
                name=name, namespace=NAMESPACE, max_restarts=cluster.max_restarts, max_task_retries=0,
                num_cpus=cluster.cpus_per_worker, num_gpus=cluster.gpus_per_worker, scheduling_strategy="SPREAD",
                max_concurrency=4,
            ).remote(worker_config(data, name, share), name, self.hub, self.ledger, self.control is not None))
            self.views.append(WorkerView(name, [s["name"] for s in share]))
        log.warning("cluster: %d workers for %d cameras on %s", count, len(data["sources"]), cluster.address)
        started = time.monotonic()
        summary = ClusterSummary()
        if live_view is not None:
            live_view.start()
        with StopSignals() as stop:
            try:
                while not stop.event.is_set() and not all(v.done for v in self.views):
                    asked = time.monotonic()
                    # A worker coming back is looked at more often: its cameras' return is seen at once.
                    period = FAST_LOOK_S if any(v.coming_back for v in self.views) else cluster.status_every_s
                    self._look(period)  # waits for the answers up to the period, then for the rest of it
                    stop.event.wait(max(0.0, period - (time.monotonic() - asked)))
            finally:
                summary.stopped_by = stop.by
                self._finish()
        summary.seconds = time.monotonic() - started
        summary.workers = [v.as_dict(time.monotonic()) for v in self.views]
        summary.run_dir = self.folder.path
        self._close_hub(summary)
        self.reporter.finish()
        return summary

    def _live_view(self):
        """The live view of the whole cluster (web.enabled): every camera's status and /metrics, from the
        workers' answers; video stays on the workers (each camera shows a picture of its state). The console
        reviews every worker's sightings."""
        if not self.config.web.enabled:
            return None
        from streamer.web.server import LiveView

        web = self.config.web
        console = None
        if web.console:  # on the cluster's one store; the workers read its changes (PostgreSQL's LISTEN)
            from streamer.web.console import open_console

            console = open_console(self.config, None)
        try:
            view = LiveView(web, self._streams, self.control, console)
        except OSError as exc:
            if console is not None:
                console.close()
            raise ConfigError(f"web.port: cannot listen on {web.host}:{web.port}: {exc.strerror or exc}") from None
        log.warning("live view: %s", view.url)
        return view

    def _hub(self, output: dict, alerts: list):
        """The cluster's event stream, on this machine (it writes into this run folder)."""
        hub = self.ray.remote(EventHub).options(name=HUB, namespace=NAMESPACE, num_cpus=0,
                                                scheduling_strategy=self._here())
        return hub.remote(output, str(self.folder.path), alerts)

    def _here(self):
        """A placement on the driver's machine."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return NodeAffinitySchedulingStrategy(node_id=self.ray.get_runtime_context().get_node_id(), soft=False)

    def _close_hub(self, summary: ClusterSummary) -> None:
        """After the workers: what they sent is delivered (the webhook for up to its drain_s), then reported."""
        webhook = self.config.output.webhook
        wait = (webhook.drain_s if webhook else 0.0) + 30.0
        try:
            closed = self.ray.get(self.hub.close.remote(), timeout=wait)
        except (self.ray.exceptions.GetTimeoutError, self.ray.exceptions.RayActorError) as exc:
            summary.errors.append(f"cluster: the event stream did not close: {_reason(exc)}")
        else:
            summary.outputs, summary.errors = closed["outcomes"], [redact(e) for e in closed["errors"]]
        self.ray.kill(self.hub, no_restart=True)

    def _named(self, name: str) -> bool:
        try:
            self.ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            return False
        return True

    def _look(self, period: float) -> None:
        """Asks every worker that answered its last question how it is doing; notes restarts and silences."""
        ray = self.ray
        now = time.monotonic()
        for view, actor in zip(self.views, self.actors):
            if view.pending is None and not view.done:
                view.pending, view.asked_at = actor.status.remote(), now
        in_flight = [v.pending for v in self.views if v.pending is not None]
        ready, _ = ray.wait(in_flight, num_returns=len(in_flight), timeout=period)
        ready = set(ready)
        for view in self.views:
            if view.pending is None:
                continue
            if view.pending not in ready:
                # Ray may take seconds to report a killed process: the silence is timed from the question.
                view.unanswered_since = view.unanswered_since or view.asked_at
                continue
            try:
                status = ray.get(view.pending)
            except ray.exceptions.ActorDiedError as exc:  # dead for good: restarts spent, or it could not start
                view.pending = None
                status = {"state": "lost", "error": f"{view.name} was lost: {_reason(exc)}"}
            except ray.exceptions.RayActorError as exc:  # unavailable for now: Ray restarts it where there is room
                view.pending = None
                view.unanswered_since = view.unanswered_since or now
                if view.status is not None and view.status.get("state") == "running":
                    view.status = {**view.status, "state": "restarting"}
                    log.warning("cluster: %s was lost (%s); Ray restarts it", view.name, _reason(exc))
                continue
            view.pending, view.unanswered_since = None, None
            previous = view.status
            if previous is not None and previous.get("pid") and status.get("pid") and previous["pid"] != status["pid"]:
                view.restarts += 1
                log.warning("cluster: %s was lost and is running again on %s (pid %s): its cameras %s reconnect",
                            view.name, status.get("ip"), status.get("pid"), ", ".join(view.cameras))
            view.status = status
        self._write_state(now)
        self.reporter.update(self._streams)

    def _streams(self) -> list[StreamStatus]:
        """Every camera of every worker as its worker last said, for the status line, the live view and
        /metrics; the cameras of a worker that does not answer (lost, restarting) read as down, now."""
        statuses = []
        for view in self.views:
            said = {s["name"]: StreamStatus(**s) for s in (view.status or {}).get("streams", [])}
            # Lost (Ray said so), or silent for a while: a busy worker may answer a second late, and is not down.
            silent = view.unanswered_since is not None and time.monotonic() - view.unanswered_since > SILENT_S
            away = silent or (view.status or {}).get("state") in ("restarting", "lost")
            for camera in list(view.cameras):  # copied: a camera may be added meanwhile (web.control)
                status = said.get(camera) or _not_started(camera)
                if away:
                    age = None if status.last_frame_time is None else max(0.0, time.time() - status.last_frame_time)
                    status = dataclasses.replace(status, state="down", connected=False, fps_in=0.0, fps_out=0.0,
                                                 last_error=_silence(view),
                                                 last_frame_age_s=age, updated=time.time())
                statuses.append(status)
        return statuses

    def _write_state(self, now: float) -> None:
        state = {"address": self.cluster.address, "updated": time.time(),
                 "workers": [v.as_dict(now) for v in self.views]}
        self.ledger.put.remote(state)
        self.out.mkdir(parents=True, exist_ok=True)
        partial = self.out / "cluster.json.partial"
        partial.write_text(json.dumps(state, indent=1))
        partial.replace(self.out / "cluster.json")  # atomic: a reader never sees half a file

    def _finish(self) -> None:
        """A clean stop of every worker still running, waited for together."""
        ray = self.ray
        calls = {v.name: a.finish.remote(FINISH_S - 10) for v, a in zip(self.views, self.actors) if not v.done}
        deadline = time.monotonic() + FINISH_S
        for view in self.views:
            call = calls.get(view.name)
            if call is None:
                continue
            try:
                view.status = ray.get(call, timeout=max(0.1, deadline - time.monotonic()))
            except ray.exceptions.GetTimeoutError:
                view.status = {**(view.status or {}), "state": "failed",
                               "error": f"{view.name} did not stop within {FINISH_S:g} s"}
            except ray.exceptions.RayActorError:
                view.status = {**(view.status or {}), "state": "lost", "error": f"{view.name} was lost while stopping"}
        self._write_state(time.monotonic())
        for actor in [*self.actors, self.ledger]:
            ray.kill(actor, no_restart=True)


class ClusterControl:
    """web.control on the driver: a camera added goes to the running worker with the fewest, a camera removed
    leaves the worker that has it; the ledger then holds each worker's cameras, for a worker Ray restarts. A
    camera's name stays taken for the whole run, as in one run (runtime/control.py)."""

    def __init__(self, driver: _Driver):
        self.driver = driver
        self._lock = threading.Lock()
        self._used = {s.name for s in driver.config.sources}

    def add(self, entry: object) -> tuple[StreamStatus | None, bool]:
        from streamer.runtime.control import ControlError, name_taken, parse_entry

        name = parse_entry(entry).name
        driver = self.driver
        with self._lock:
            if name in self._used:
                raise name_taken(name)
            running = [(len(v.cameras), i) for i, v in enumerate(driver.views) if not v.done]
            if not running:
                raise ControlError(503, "no worker is running to take it")
            index = min(running)[1]
            self._used.add(name)
        view, actor = driver.views[index], driver.actors[index]
        try:
            answer = self._ask(actor.add_stream.remote(entry))
        except TimeoutError:
            # The worker may still add it (it was loading, or restarting): it is counted as that worker's, shown
            # as not started until it is, and a DELETE takes it away either way.
            answer = {"code": 202, "status": None}
        except ControlError:
            with self._lock:
                self._used.discard(name)
            raise
        if answer["code"] >= 400:
            with self._lock:
                self._used.discard(name)
            raise ControlError(answer["code"], answer["error"])
        with self._lock:
            view.cameras.append(name)
            driver.assignments[view.name] = [*driver.assignments[view.name], entry]
            driver.ledger.assign.remote(view.name, driver.assignments[view.name])
        log.warning("cluster: camera %r added to %s", name, view.name)
        return _status(answer), answer["code"] == 201

    def remove(self, name: str) -> tuple[StreamStatus | None, bool]:
        from streamer.runtime.control import ControlError

        driver = self.driver
        with self._lock:
            index = next((i for i, v in enumerate(driver.views) if name in v.cameras), None)
        if index is None:
            raise ControlError(404, f"no stream named {name!r} is running")
        view, actor = driver.views[index], driver.actors[index]
        try:
            answer = self._ask(actor.remove_stream.remote(name))
        except TimeoutError:
            answer = {"code": 202, "status": None}  # it will be removed: the worker has the request
        # Not running on its worker (removed by an earlier request that timed out, or a restart came back
        # without it): the driver forgets it too, so no later restart brings it back.
        with self._lock:
            if name in view.cameras:
                view.cameras.remove(name)
            driver.assignments[view.name] = [e for e in driver.assignments[view.name] if e["name"] != name]
            driver.ledger.assign.remote(view.name, driver.assignments[view.name])
        if answer["code"] == 404:
            raise ControlError(404, f"{name!r} was not running on {view.name} any more: it is forgotten")
        if answer["code"] >= 400:
            raise ControlError(answer["code"], answer["error"])
        log.warning("cluster: camera %r removed from %s", name, view.name)
        return _status(answer), answer["code"] == 200

    def _ask(self, call) -> dict:
        """The worker's answer; TimeoutError when it has not answered within the longest a worker takes (its
        models loading, then the loop taking the request); a worker lost meanwhile is a 503."""
        from streamer.runtime.control import APPLY_WAIT_S, ControlError

        ray = self.driver.ray
        try:
            return ray.get(call, timeout=2 * APPLY_WAIT_S + 10)
        except ray.exceptions.GetTimeoutError:
            raise TimeoutError from None
        except ray.exceptions.RayActorError as exc:
            raise ControlError(503, f"its worker is not running ({_reason(exc)}); try again") from None


def _status(answer: dict) -> StreamStatus | None:
    return StreamStatus(**answer["status"]) if answer.get("status") else None


def _silence(view: WorkerView) -> str:
    """Why a worker's cameras read down: it never answered (starting, or no room for it), or it was lost."""
    if view.status is None:
        return f"{view.name} has not answered since it was started (loading its models, or waiting for room)"
    return f"{view.name} does not answer (Ray restarts it)"


def _not_started(camera: str) -> StreamStatus:
    return StreamStatus(name=camera, live=True, state="connecting", connected=False, decoded=0, frames_out=0, dropped=0,
                        reconnects=0, stalls=0, decode_errors=0, skipped_damaged=0, connect_failures=0, fps_in=0.0,
                        fps_out=0.0, latency_ms=0.0, last_error=None, width=None, height=None, last_frame_time=None,
                        last_frame_age_s=None, updated=time.time())


def _reason(exc: Exception) -> str:
    """Ray's message in one line (a worker's traceback may quote a config value: redacted)."""
    return redact(" ".join(str(exc).split()))[:300]


def read_status(address: str) -> dict | None:
    """The running driver's latest view of the cluster at ``address``; None when no streamer run is there."""
    ray = connect(address)
    try:
        try:
            ledger = ray.get_actor(LEDGER, namespace=NAMESPACE)
        except ValueError:
            return None
        return ray.get(ledger.get.remote(), timeout=10)
    finally:
        ray.shutdown()


def render_status(state: dict) -> str:
    """``streamer cluster status``: a worker per line, its cameras indented below it."""
    age = time.time() - state.get("updated", time.time())
    lines = [f"cluster {state.get('address')} (as the driver saw it {age:.0f} s ago)"]
    for worker in state.get("workers", []):
        where = f"{worker.get('ip') or '?'} pid {worker.get('pid') or '?'}"
        silent = f", no answer for {worker['unanswered_s']:g} s" if worker.get("unanswered_s") else ""
        lines.append(f"{worker['worker']}: {worker['state']} on {where}, restarts {worker['restarts']}{silent}"
                     + (f" - {worker['error']}" if worker.get("error") else ""))
        streams = {s["name"]: s for s in worker.get("streams", [])}
        for camera in worker["cameras"]:
            s = streams.get(camera)
            lines.append(f"  {camera}: " + ("not started" if s is None else
                         f"{s['state']}, in {s['fps_in']:.1f} fps, out {s['fps_out']:.1f} fps, latency "
                         f"{s['latency_ms']:.0f} ms, drops {s['dropped']}, reconnects {s['reconnects']}"))
    return "\n".join(lines)
