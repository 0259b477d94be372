"""One event stream for a cluster: every worker hands its committed events to the hub, a Ray actor on the
driver's machine, which writes them to the driver's run folder (``events.jsonl``), POSTs them to
``output.webhook``, publishes them to MQTT and raises the alerts: the same sinks a single run has, fed by
every worker in the order they arrive.

A worker sends a batch only once its store transaction committed (runtime/emit.py), and Ray delivers one
caller's calls to an actor in order: each sighting reaches the stream once, a worker's in their order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from streamer.records import Sighting


class EventHub:
    """Made a Ray actor by the driver (``ray.remote(EventHub)``), pinned to the driver's machine."""

    def __init__(self, output_data: dict, run_dir: str, alerts_data: list | None = None):
        from streamer.alerts import AlertRule
        from streamer.config import OutputConfig
        from streamer.sinks import event_sinks

        alerts = [AlertRule.model_validate(a) for a in alerts_data or []]
        self.sinks = event_sinks(OutputConfig.model_validate(output_data), Path(run_dir), alerts)
        self.errors: list[str] = []

    def publish(self, worker: str, events: list[dict]) -> None:
        batch = [Sighting(e.get("sighting"), None, e) for e in events]
        for sink in self.sinks:
            try:
                sink.emit(batch)
            except Exception as exc:  # noqa: BLE001 - a sink that failed is reported at the end, in one line
                if str(exc) not in self.errors:
                    self.errors.append(str(exc))

    def close(self, drain: bool = True) -> dict:
        """Closes every sink (the webhook delivers what it holds, for up to its drain_s): their outcome lines
        and the errors met."""
        for sink in self.sinks:
            try:
                sink.close(drain)
            except Exception as exc:  # noqa: BLE001 - the other sinks still close
                self.errors.append(str(exc))
        return {"outcomes": [line for line in (s.outcome() for s in self.sinks) if line], "errors": self.errors}


class HubSink:
    """A worker's event sink: its committed events, to the cluster's hub (fire and forget: the hub's answer
    is not waited for, so a slow webhook never holds a camera's loop)."""

    def __init__(self, hub, worker: str):
        self.hub, self.worker = hub, worker

    def emit(self, sightings: Sequence[Sighting]) -> None:
        if sightings:
            self.hub.publish.remote(self.worker, [s.json for s in sightings])

    def close(self, drain: bool = True) -> None:
        pass

    def outcome(self) -> str | None:
        return None
