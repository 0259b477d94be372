"""Tracks and sightings: every event of a run, written before it is sent anywhere else.

A sighting that ``record`` returned is committed: it survives the process being killed.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence

from streamer.records import EventKind, Sighting, TrackEvent
from streamer.store.database import Database, checkpoint, transaction
from streamer.store.gallery import GalleryStore, encode_crop, encode_vector

DAY_S = 86400.0
# An identity's id as a value, NULL when it is no longer there (erased, merged away while events waited).
_IF_STILL_THERE = "(SELECT id FROM identities WHERE id = ?)"
CHANGES_KEPT_S = 7 * DAY_S


class SightingStore:
    def __init__(self, conn: Database, run: str | None = None):
        self.conn = conn
        self.run = run or uuid.uuid4().hex[:12]
        self._tracks: dict[tuple[str, int], int] = {}  # (stream, track id) -> tracks row

    def record(self, events: Sequence[TrackEvent], keys: Sequence[str] | None = None) -> list[Sighting]:
        """Writes the events in one transaction; returns them as sightings (their ids in the store), in
        order. Once this returns, they are committed: they survive the process being killed.

        ``keys`` (one per event, unique in the store): an event written again under its key, after a commit
        whose answer was lost with the connection, is found rather than stored twice. An identity erased or
        merged away meanwhile (the events waited through an outage) is written as nobody."""
        if not events:
            return []
        keys = list(keys) if keys is not None else [None] * len(events)
        opened: dict[tuple[str, int], int] = {}  # tracks rows made in this transaction
        sightings = []
        with transaction(self.conn):
            for event, event_key in zip(events, keys):
                key = (event.stream, event.track_id)
                track = self._tracks.get(key) or opened.get(key)
                if track is None:
                    # An upsert: a commit whose answer was lost with the connection may have made the row already.
                    track = opened[key] = self.conn.insert(
                        "INSERT INTO tracks (run, stream, track_id, started) VALUES (?, ?, ?, ?) ON CONFLICT "
                        "(run, stream, track_id) DO UPDATE SET started = tracks.started",
                        (self.run, event.stream, event.track_id, event.time))
                if event.identity_id is not None or event.kind is EventKind.IDENTITY:
                    self.conn.execute(f"UPDATE tracks SET identity_id = {_IF_STILL_THERE} WHERE id = ?",
                                      (event.identity_id, track))
                if event.kind is EventKind.TRACK_END:
                    self.conn.execute("UPDATE tracks SET ended = ? WHERE id = ?", (event.time, track))
                fields = event.to_json()  # the row's id is its sighting id
                sighting = self._insert_sighting(event, track, fields, event_key)
                sightings.append(Sighting(sighting, event, {**fields, "sighting": sighting}))
            # When each identity was last seen (what keeps a pseudo-identity from expiring), in the same commit;
            # one update per identity, in id order: runs writing at once take the rows' locks in the same order.
            seen: dict[int, float] = {}
            for e in events:
                if e.identity_id is not None:
                    seen[e.identity_id] = max(seen.get(e.identity_id, e.time), e.time)
            self.conn.executemany(
                "UPDATE identities SET last_seen = ? WHERE id = ? AND (last_seen IS NULL OR last_seen < ?)",
                [(when, identity, when) for identity, when in sorted(seen.items())])
        # Only once committed: a rolled-back transaction leaves no row behind that the cache would point at.
        self._tracks.update(opened)
        for event in events:
            if event.kind is EventKind.TRACK_END:
                self._tracks.pop((event.stream, event.track_id), None)
        return sightings

    def _insert_sighting(self, event: TrackEvent, track: int, fields: dict, event_key: str | None) -> int:
        values = (event.time, event.kind.value, event.stream, track, event.identity_id,
                  json.dumps(fields, separators=(",", ":")),
                  encode_crop(event.crop) if event.crop is not None else None, event.model_id,
                  encode_vector(event.embedding) if event.embedding is not None else None, event_key,
                  encode_crop(event.reconstruction) if event.reconstruction is not None else None,
                  None if event.face is None else int(bool(event.face.occluders)))
        statement = ("INSERT INTO sightings (time, type, stream, track, identity_id, event, crop, model_id, embedding, "
                     "event_key, reconstruction, occluded) "
                     f"VALUES (?, ?, ?, ?, {_IF_STILL_THERE}, ?, ?, ?, ?, ?, ?, ?)")
        if event_key is None:
            return self.conn.insert(statement, values)
        rows = self.conn.execute(statement + " ON CONFLICT (event_key) DO NOTHING RETURNING id", values).fetchall()
        if rows:
            return rows[0][0]
        return self.conn.execute("SELECT id FROM sightings WHERE event_key = ?", (event_key,)).fetchone()[0]

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
            # Every run prunes at its start (many at once in a cluster): one at a time, the gallery's lock after.
            self.conn.lock("maintenance")
            self.conn.lock("gallery")
            # Sightings first, so their count includes those of the tracks deleted next (a cascade).
            sightings = self.conn.execute("DELETE FROM sightings WHERE time < ?", (cutoff,)).rowcount
            tracks = self.conn.execute(
                "DELETE FROM tracks WHERE (ended IS NOT NULL AND ended < :cutoff) OR (ended IS NULL "
                "AND COALESCE((SELECT MAX(s.time) FROM sightings s WHERE s.track = tracks.id), started) < :cutoff "
                "AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = tracks.run AND r.ended IS NULL "
                "AND r.heartbeat >= :alive_since))",
                {"cutoff": cutoff, "alive_since": alive_since}).rowcount
            expired = self.conn.execute(
                "DELETE FROM identities WHERE kind = 'pseudo' AND COALESCE(last_seen, created) < ? RETURNING id, name",
                (cutoff,)).fetchall()
            gallery = GalleryStore(self.conn, actor=f"retention of run {self.run}")
            gallery.note_changed(*(i for i, _ in expired))
            if expired:
                gallery.audit("expired", "pseudo-identities", names=sorted(n for _, n in expired),
                              retention_days=retention_days)
            # Runs read the gallery's changes every second or so: a week of them is plenty.
            self.conn.execute("DELETE FROM gallery_changes WHERE time < ?", (time.time() - CHANGES_KEPT_S,))
            counts = {
                "sightings": sightings,
                "tracks": tracks,
                "pseudo-identities": len(expired),
                "runs": self.conn.execute("DELETE FROM runs WHERE ended < ?", (cutoff,)).rowcount,
            }
        if any(counts.values()):
            checkpoint(self.conn)
        return counts
