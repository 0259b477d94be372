"""Keeps a run's in-memory gallery index in step with the store, which other runs (on this machine or on
others sharing a PostgreSQL store) change: a person enrolled, a pseudo-identity made or named, a face
rejected, an identity erased.

Every change is logged in the store in the transaction that made it (``gallery_changes``). The run reads
the log at most every ``every_s`` seconds, at once when PostgreSQL's LISTEN says another run committed one,
and reloads just the identities named there: a change is seen by every run within about a second, and a
change missed while the store was down is read when it answers again.
"""

from __future__ import annotations

import logging
import threading
import time

from streamer.identify.gallery import GalleryIndex
from streamer.store.database import StoreUnavailable
from streamer.store.gallery import GalleryStore

log = logging.getLogger(__name__)

POLL_EVERY_S = 1.0
RELOAD_ALL_ABOVE = 500  # changed identities past which the whole gallery is read again


class GallerySync:
    def __init__(self, store: GalleryStore, index: GalleryIndex, since: int, listener=None,
                 every_s: float = POLL_EVERY_S):
        self.store, self.index, self.change = store, index, since
        self.listener, self.every_s = listener, every_s
        self._last = time.monotonic()
        self._unavailable_said = 0.0
        self._woken = threading.Event()

    def wake(self) -> None:
        """(Any thread.) A change was committed in this process (the console): the next poll reads it."""
        self._woken.set()

    def poll(self, now: float | None = None) -> int:
        """Reloads what changed since the last look, when one is due; returns how many identities it reloaded."""
        now = time.monotonic() if now is None else now
        woken = self._woken.is_set() or (self.listener is not None and self.listener.changed.is_set())
        if not woken and now - self._last < self.every_s:
            return 0
        self._last = now
        if woken:  # cleared before reading: a change committed during the read wakes it again
            self._woken.clear()
            if self.listener is not None:
                self.listener.changed.clear()
        try:
            newest, changed = self.store.changes_since(self.change)
            if len(changed) > RELOAD_ALL_ABOVE:  # a re-embedding, a big prune: the whole gallery, not a long IN list
                self.index.replace(changed | self.index.identities(), self.store.vectors(self.index.model_id))
            elif changed:
                self.index.replace(changed, self.store.vectors(self.index.model_id, only=changed))
        except StoreUnavailable as exc:
            if now - self._unavailable_said > 30:
                self._unavailable_said = now
                log.warning("%s: the gallery is matched as it was until it answers", exc)
            return 0
        self.change = newest
        return len(changed)

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
