"""Tracks and sightings: every event of a run, written before it is sent anywhere else.

A sighting that ``record`` returned is committed: it survives the process being killed.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid

from streamer.records import TrackEvent
from streamer.store.database import checkpoint, transaction
from streamer.store.gallery import encode_crop, encode_vector

DAY_S = 86400.0


class SightingStore:
    def __init__(self, conn: sqlite3.Connection, run: str | None = None):
        self.conn = conn
        self.run = run or uuid.uuid4().hex[:12]
        self._tracks: dict[tuple[str, int], int] = {}  # (stream, track id) -> tracks row

    def record(self, events: list[TrackEvent]) -> None:
        """Writes the events in one transaction and sets each one's ``sighting`` id."""
        if not events:
            return
        with transaction(self.conn):
            for event in events:
                fields = event.fields
                stream, track_id, when = fields["stream"], fields["track_id"], event.time
                key = (stream, track_id)
                if key not in self._tracks:
                    self._tracks[key] = self.conn.execute(
                        "INSERT INTO tracks (run, stream, track_id, started) VALUES (?, ?, ?, ?)",
                        (self.run, stream, track_id, when),
                    ).lastrowid
                track = self._tracks[key]
                if event.identity_id is not None or fields["type"] == "identity":
                    self.conn.execute("UPDATE tracks SET identity_id = ? WHERE id = ?", (event.identity_id, track))
                if fields["type"] == "track_end":
                    self.conn.execute("UPDATE tracks SET ended = ? WHERE id = ?", (when, track))
                    del self._tracks[key]
                cursor = self.conn.execute(
                    "INSERT INTO sightings (time, type, stream, track, identity_id, event, crop, model_id, embedding) "
                    "VALUES (?, ?, ?, ?, ?, '{}', ?, ?, ?)",
                    (when, fields["type"], stream, track, event.identity_id,
                     encode_crop(event.crop) if event.crop is not None else None, event.model_id,
                     encode_vector(event.embedding) if event.embedding is not None else None),
                )
                fields["sighting"] = cursor.lastrowid
                self.conn.execute("UPDATE sightings SET event = ? WHERE id = ?",
                                  (json.dumps(fields, separators=(",", ":")), cursor.lastrowid))
            # When each identity was last seen (what keeps a pseudo-identity from expiring), in the same commit.
            self.conn.executemany("UPDATE identities SET last_seen = MAX(COALESCE(last_seen, 0), ?) WHERE id = ?",
                                  [(e.time, e.identity_id) for e in events if e.identity_id is not None])

    def prune(self, retention_days: float, now: float | None = None) -> dict[str, int]:
        """Deletes what is older than the retention: sightings, ended tracks, and pseudo-identities
        not seen since (their crops and vectors with them). Enrolled people are kept."""
        cutoff = (now or time.time()) - retention_days * DAY_S
        with transaction(self.conn):
            counts = {
                "sightings": self.conn.execute("DELETE FROM sightings WHERE time < ?", (cutoff,)).rowcount,
                "tracks": self.conn.execute(
                    "DELETE FROM tracks WHERE ended IS NOT NULL AND ended < ?", (cutoff,)).rowcount,
                "pseudo-identities": self.conn.execute(
                    "DELETE FROM identities WHERE kind = 'pseudo' AND COALESCE(last_seen, created) < ?",
                    (cutoff,)).rowcount,
            }
        if any(counts.values()):
            checkpoint(self.conn)
        return counts
