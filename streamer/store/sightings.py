"""Tracks and sightings: every event of a run, written before it is sent anywhere else.

A sighting that ``record`` returned is committed: it survives the process being killed.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Sequence

from streamer.records import EventKind, Sighting, TrackEvent
from streamer.store.database import checkpoint, transaction
from streamer.store.gallery import encode_crop, encode_vector

DAY_S = 86400.0


class SightingStore:
    def __init__(self, conn: sqlite3.Connection, run: str | None = None):
        self.conn = conn
        self.run = run or uuid.uuid4().hex[:12]
        self._tracks: dict[tuple[str, int], int] = {}  # (stream, track id) -> tracks row

    def record(self, events: Sequence[TrackEvent]) -> list[Sighting]:
        """Writes the events in one transaction; returns them as sightings (their ids in the store), in
        order. Once this returns, they are committed: they survive the process being killed."""
        if not events:
            return []
        opened: dict[tuple[str, int], int] = {}  # tracks rows made in this transaction
        sightings = []
        with transaction(self.conn):
            for event in events:
                key = (event.stream, event.track_id)
                track = self._tracks.get(key) or opened.get(key)
                if track is None:
                    track = opened[key] = self.conn.execute(
                        "INSERT INTO tracks (run, stream, track_id, started) VALUES (?, ?, ?, ?)",
                        (self.run, event.stream, event.track_id, event.time)).lastrowid
                if event.identity_id is not None or event.kind is EventKind.IDENTITY:
                    self.conn.execute("UPDATE tracks SET identity_id = ? WHERE id = ?", (event.identity_id, track))
                if event.kind is EventKind.TRACK_END:
                    self.conn.execute("UPDATE tracks SET ended = ? WHERE id = ?", (event.time, track))
                fields = event.to_json()  # the row's id is its sighting id
                sighting = self.conn.execute(
                    "INSERT INTO sightings (time, type, stream, track, identity_id, event, crop, model_id, embedding) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (event.time, event.kind.value, event.stream, track, event.identity_id,
                     json.dumps(fields, separators=(",", ":")),
                     encode_crop(event.crop) if event.crop is not None else None, event.model_id,
                     encode_vector(event.embedding) if event.embedding is not None else None),
                ).lastrowid
                sightings.append(Sighting(sighting, event, {**fields, "sighting": sighting}))
            # When each identity was last seen (what keeps a pseudo-identity from expiring), in the same commit.
            self.conn.executemany("UPDATE identities SET last_seen = MAX(COALESCE(last_seen, 0), ?) WHERE id = ?",
                                  [(e.time, e.identity_id) for e in events if e.identity_id is not None])
        # Only once committed: a rolled-back transaction leaves no row behind that the cache would point at.
        self._tracks.update(opened)
        for event in events:
            if event.kind is EventKind.TRACK_END:
                self._tracks.pop((event.stream, event.track_id), None)
        return sightings

    def prune(self, retention_days: float, now: float | None = None, stale_after_s: float = 60.0) -> dict[str, int]:
        """Deletes what is older than the retention: sightings, ended tracks, open tracks of runs no longer
        alive, pseudo-identities not seen since (their crops and vectors with them) and the rows of runs
        ended before it. Enrolled people are kept.

        An open track older than the retention goes when its run is not alive: no ``runs`` row (a store
        of schema 1, or a run killed before it registered), ended, or silent for ``stale_after_s`` (by
        the clock, not ``now``: ``now`` moves the retention cut-off only). A live run's tracks stay.
        """
        cutoff = (now or time.time()) - retention_days * DAY_S
        alive_since = time.time() - stale_after_s
        with transaction(self.conn):
            # Sightings first, so their count includes those of the tracks deleted next (a cascade).
            sightings = self.conn.execute("DELETE FROM sightings WHERE time < ?", (cutoff,)).rowcount
            tracks = self.conn.execute(
                "DELETE FROM tracks WHERE (ended IS NOT NULL AND ended < :cutoff) OR (ended IS NULL "
                "AND COALESCE((SELECT MAX(s.time) FROM sightings s WHERE s.track = tracks.id), started) < :cutoff "
                "AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = tracks.run AND r.ended IS NULL "
                "AND r.heartbeat >= :alive_since))",
                {"cutoff": cutoff, "alive_since": alive_since}).rowcount
            counts = {
                "sightings": sightings,
                "tracks": tracks,
                "pseudo-identities": self.conn.execute(
                    "DELETE FROM identities WHERE kind = 'pseudo' AND COALESCE(last_seen, created) < ?",
                    (cutoff,)).rowcount,
                "runs": self.conn.execute("DELETE FROM runs WHERE ended < ?", (cutoff,)).rowcount,
            }
        if any(counts.values()):
            checkpoint(self.conn)
        return counts
