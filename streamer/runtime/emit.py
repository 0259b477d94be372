"""The emit stage: events go to the store first (committed: a sighting is never lost), then, with their
sighting ids, to every event sink in order."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from streamer.errors import OutputError
from streamer.records import TrackEvent
from streamer.sinks.base import EventSink
from streamer.store.sightings import SightingStore

log = logging.getLogger(__name__)


class Emitter:
    def __init__(self, sightings: SightingStore, sinks: Sequence[EventSink]):
        self.sightings, self.sinks = sightings, list(sinks)
        self.count = 0
        self.failed = False

    def emit(self, events: Sequence[TrackEvent]) -> None:
        if not events:
            return
        try:
            batch = self.sightings.record(events)  # a store that cannot be written raises OutputError
            for sink in self.sinks:
                sink.emit(batch)
        except OutputError:
            self.failed = True  # nothing more can be emitted: the run's end skips its track ends
            raise
        self.count += len(batch)

    def close(self, drain: bool = True) -> list[str]:
        """Closes every sink (each delivers what it still holds, unless ``drain`` is off: an abort); returns
        the errors met, one line each."""
        errors = []
        for sink in self.sinks:
            try:
                sink.close(drain)
            except Exception as exc:  # the other sinks still close
                errors.append(str(exc))
        return errors

    def outcomes(self) -> list[str]:
        return [line for line in (sink.outcome() for sink in self.sinks) if line]
