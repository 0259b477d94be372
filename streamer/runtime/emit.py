"""The emit stage: events go to the store first (committed: a sighting is never lost), then, with their
sighting ids, to every event sink in order. While a PostgreSQL store restarts, the events wait here and the
cameras go on."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from streamer.errors import OutputError
from streamer.records import TrackEvent
from streamer.sinks.base import EventSink
from streamer.store.database import StoreUnavailable
from streamer.store.sightings import SightingStore

log = logging.getLogger(__name__)


class Emitter:
    def __init__(self, sightings: SightingStore, sinks: Sequence[EventSink], buffer_events: int = 10000):
        self.sightings, self.sinks = sightings, list(sinks)
        self.buffer_events = buffer_events
        self.pending: list[tuple[str, TrackEvent]] = []  # (key, event) not yet committed: the server did not answer
        self._written = 0  # events given a key so far: the key makes writing one again harmless
        self.count = 0
        self.failed = False

    def emit(self, events: Sequence[TrackEvent]) -> None:
        """Commits the events (after any still waiting, in order), then gives them to every sink. While the
        store's server cannot be reached they wait here, up to ``buffer_events``; past that the run stops
        (``OutputError``) rather than drop them."""
        waiting = [*self.pending, *((self._key(), e) for e in events)]
        if not waiting:
            return
        try:
            # A store that cannot be written raises OutputError.
            batch = self.sightings.record([e for _, e in waiting], [k for k, _ in waiting])
        except StoreUnavailable as exc:
            if len(waiting) > self.buffer_events:
                self.failed = True
                raise OutputError(f"{exc}; more events waited than store.buffer_events ({self.buffer_events}): "
                                  f"the run stops, and the {len(waiting)} waiting are not written") from None
            if not self.pending:
                log.warning("%s: events are kept (at most store.buffer_events, %d) until it answers", exc,
                            self.buffer_events)
            self.pending = waiting
            return
        except OutputError:
            self.failed = True  # nothing more can be emitted: the run's end skips its track ends
            raise
        if self.pending:
            log.warning("store: answering again; %d events that waited are written", len(self.pending))
        self.pending = []
        for sink in self.sinks:
            sink.emit(batch)
        self.count += len(batch)

    def _key(self) -> str:
        self._written += 1
        return f"{self.sightings.run}:{self._written}"

    def flush(self, wait_s: float = 0.0) -> None:
        """Writes the events that wait, if any; tries for up to ``wait_s`` seconds (a run's end). Those still
        waiting then raise ``OutputError``, with their count."""
        deadline = time.monotonic() + wait_s
        while self.pending:
            self.emit(())
            if not self.pending:
                return
            if time.monotonic() >= deadline:
                if wait_s:
                    self.failed = True
                    raise OutputError(f"store: {len(self.pending)} events could not be written: its server did "
                                      f"not answer for {wait_s:g} s at the end of the run")
                return
            time.sleep(0.5)

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
