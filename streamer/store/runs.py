"""Which runs write to the store, and which of them are still alive.

A run's tracks stay open (``tracks.ended`` NULL) until its tracker ends them. A run killed with
``kill -9`` (or a power cut) never does, and retention only deleted ended tracks, so those tracks
outlived ``store.retention_days``. Each run therefore has a row in ``runs`` with a heartbeat it
renews while it works; another run (or ``close_dead`` at start-up) ends the tracks of a run whose
heartbeat stopped, at the time of their latest sighting, and retention treats open tracks of a
dead run like ended ones.

Liveness is judged by the heartbeat, not by the process id: a pid may be reused, and the runs
sharing a store need not be on one host (their clocks must then agree to well within
``stale_after_s``).
"""

from __future__ import annotations

import logging
import os
import socket
import time

from streamer.store.database import Database, transaction

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 10.0
STALE_AFTER_S = 60.0

# An open track's end when its run died: its latest sighting, or its start when it has none.
_LATEST_SIGHTING = "COALESCE((SELECT MAX(s.time) FROM sightings s WHERE s.track = tracks.id), tracks.started)"


class RunRegistry:
    """One run's row in ``runs`` (``start``, ``beat``, ``finish``) and the clean-up of runs that died
    (``close_dead``). Every write is its own short transaction."""

    def __init__(self, conn: Database, interval_s: float = HEARTBEAT_INTERVAL_S):
        self.conn = conn
        self.interval_s = interval_s
        self.run_id: str | None = None
        self._last_beat = 0.0

    def start(self, run_id: str) -> None:
        """Registers this process's run (``run_id`` is what its tracks hold in ``tracks.run``)."""
        now = time.time()
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO runs (id, host, pid, started, heartbeat) VALUES (?, ?, ?, ?, ?)",
                (run_id, process_host(), os.getpid(), now, now),
            )
        self.run_id, self._last_beat = run_id, now

    def beat(self, now: float | None = None) -> None:
        """Says the run is alive; writes at most every ``interval_s``, so it is cheap to call for every
        batch of frames. Does nothing before ``start`` or after ``finish``."""
        now = time.time() if now is None else now
        if self.run_id is None or now - self._last_beat < self.interval_s:
            return
        with transaction(self.conn):
            # A run that stalled past another's staleness limit was taken for dead ("killed"); it is not:
            # alive again, so its new tracks are not ended under it. (Those already ended were at rest.)
            revived = self.conn.execute(
                "UPDATE runs SET heartbeat = ?, ended = NULL, outcome = NULL WHERE id = ? AND outcome = 'killed'",
                (now, self.run_id)).rowcount
            if not revived:
                self.conn.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (now, self.run_id))
        if revived:
            log.warning("store: run %s was taken for dead (no heartbeat for too long); alive again", self.run_id)
        self._last_beat = now

    def finish(self, outcome: str) -> None:
        """Marks the run over (``outcome``: completed, stopped, failed) and ends its tracks still open at
        their latest sighting: no event will end them any more."""
        if self.run_id is None:
            return
        now = time.time()
        with transaction(self.conn):
            self.conn.execute("UPDATE runs SET heartbeat = ?, ended = ?, outcome = ? WHERE id = ?",
                              (now, now, outcome, self.run_id))
            self.conn.execute(f"UPDATE tracks SET ended = {_LATEST_SIGHTING} WHERE run = ? AND ended IS NULL",
                              (self.run_id,))
        self.run_id = None

    def close_dead(self, stale_after_s: float = STALE_AFTER_S) -> int:
        """Ends what dead runs left open; returns how many tracks it ended.

        A run never finished whose heartbeat is older than ``stale_after_s`` is marked ended at its last
        heartbeat, outcome "killed"; so is one of this host and PID namespace whose process is gone (a
        ``kill -9`` is seen at the next start, not a minute later). Its open tracks end at their latest
        sighting (or start). Open tracks of runs without a row (written before schema 2, or by a run that
        never registered) end the same way once their latest sighting is older than ``stale_after_s``.
        This run's own tracks are never touched.
        """
        stale = time.time() - stale_after_s
        own, here = self.run_id or "", process_host()
        with transaction(self.conn):
            self.conn.lock("maintenance")  # runs starting at once (a cluster's workers) end the dead's tracks once
            dead = [run for run, host, pid, heartbeat in self.conn.execute(
                "SELECT id, host, pid, heartbeat FROM runs WHERE ended IS NULL AND id != ?", (own,))
                if heartbeat < stale or (host == here and not _process_exists(pid))]
            self.conn.executemany("UPDATE runs SET ended = heartbeat, outcome = 'killed' WHERE id = ?",
                                  [(r,) for r in dead])
            ended = sum(self.conn.execute(
                f"UPDATE tracks SET ended = {_LATEST_SIGHTING} WHERE run = ? AND ended IS NULL", (r,)).rowcount
                for r in dead)
            ended += self.conn.execute(
                f"UPDATE tracks SET ended = {_LATEST_SIGHTING} WHERE ended IS NULL AND run != ? "
                f"AND run NOT IN (SELECT id FROM runs) AND {_LATEST_SIGHTING} < ?", (own, stale)).rowcount
        return ended


def process_host() -> str:
    """Where a process id means something: the host name, and the PID namespace where there is one
    (containers sharing a host name have separate process ids: a pid seen from another is no evidence)."""
    try:
        return f"{socket.gethostname()} pidns:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return socket.gethostname()


def _process_exists(pid: int) -> bool:
    """Whether a process with this id runs on this host (a reused id reads as alive: the heartbeat decides)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
