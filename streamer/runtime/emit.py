"""The emit stage: events go to the store first (committed: a sighting is never lost), then, with their
sighting ids, to every event sink in order."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from streamer.errors import OutputError
from streamer.records import Sighting, TrackEvent
from streamer.sinks.base import EventSink
from streamer.store.sightings import SightingStore

log = logging.getLogger(__name__)


class Emitter:
    def __init__(self, sightings: SightingStore, store_path: Path, sinks: Sequence[EventSink]):
        self.sightings, self.store_path, self.sinks = sightings, store_path, list(sinks)
        self.count = 0

    def emit(self, events: Sequence[TrackEvent]) -> None:
        if not events:
            return
        try:
            ids = self.sightings.record(events)
        except sqlite3.Error as exc:  # "database or disk is full", a read-only file, ...
            raise OutputError(f"store: cannot write {self.store_path}: {exc}") from None
        batch = [Sighting.of(sighting, event) for sighting, event in zip(ids, events)]
        for sink in self.sinks:
            sink.emit(batch)
        self.count += len(batch)

    def close(self) -> list[str]:
        """Closes every sink (each delivers what it still holds); returns the errors met, one line each."""
        errors = []
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # the other sinks still close
                errors.append(str(exc))
        return errors

    def outcomes(self) -> list[str]:
        return [line for line in (sink.outcome() for sink in self.sinks) if line]
