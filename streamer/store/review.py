"""What the operator console reads from the store: face sightings to review (newest first, filtered), their
pictures, the gallery's identities with their faces, and the search over every sighting's face.

Reads only; the console's changes go through GalleryStore, which logs and audits them.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from streamer.store.database import Database
from streamer.store.gallery import decode_vector

COUNT_EVERY_S = 60.0


@dataclass(frozen=True)
class ReviewFilter:
    """Which face sightings the review list shows. ``after``/``before``: epoch seconds. ``older_than``: the
    (time, id) of the last row of the previous page (keyset paging: a page costs the same at any depth)."""

    stream: str | None = None
    person: str | None = None  # an identity's name, person or pseudo
    unknown: bool = False  # only faces nobody was named for, or a pseudo-identity
    occluded: bool | None = None
    after: float | None = None
    before: float | None = None
    older_than: tuple[float, int] | None = None
    limit: int = 50


@dataclass(frozen=True)
class ReviewItem:
    """One face sighting as the review list shows it."""

    id: int
    time: float
    type: str
    stream: str
    track: int
    identity: str | None
    kind: str | None  # person | pseudo | None (nobody)
    rejected: str | None  # the identity an operator said it is not
    occluded: bool
    reconstructed: bool  # a SYNTHETIC reconstruction is stored beside the face
    event: dict = field(repr=False)  # the event as written (scores, paths, occluders)

    def to_json(self) -> dict:
        e = self.event
        return {"id": self.id, "time": self.time, "type": self.type, "stream": self.stream, "track": self.track,
                "identity": self.identity, "kind": self.kind, "rejected": self.rejected, "occluded": self.occluded,
                "occluders": e.get("occluders", []), "reconstructed": self.reconstructed,
                "score": e.get("score"), "matched_on": e.get("matched_on"), "score_visible": e.get("score_visible"),
                "score_reconstructed": e.get("score_reconstructed"), "threshold": e.get("threshold"),
                "paths": e.get("paths", []), "run_named": e.get("identity")}


# What the review shows of a sighting (``_item`` reads a row of it); an unknown ``occluded`` (a sighting stored
# before the console, NULL) matches neither filter.
_ITEMS = ("SELECT s.id, s.time, s.type, s.stream, s.track, i.name, i.kind, s.rejected_identity, s.occluded, "
          "s.reconstruction IS NOT NULL, s.event FROM sightings s LEFT JOIN identities i ON i.id = s.identity_id")


def _item(row) -> ReviewItem:
    return ReviewItem(*row[:8], occluded=bool(row[8]), reconstructed=bool(row[9]), event=json.loads(row[10]))


class ReviewReader:
    def __init__(self, conn: Database):
        self.conn = conn

    def sightings(self, f: ReviewFilter) -> list[ReviewItem]:
        """Face sightings (those with a stored face) matching ``f``, newest first."""
        terms = (  # (applies, condition, its parameters)
            (f.stream is not None, "s.stream = ?", (f.stream,)),
            (f.person is not None, "i.name = ?", (f.person,)),
            (f.unknown, "(s.identity_id IS NULL OR i.kind = 'pseudo')", ()),
            (f.occluded is not None, "s.occluded = ?", (int(bool(f.occluded)),)),
            (f.after is not None, "s.time >= ?", (f.after,)),
            (f.before is not None, "s.time < ?", (f.before,)),
            (f.older_than is not None, "(s.time, s.id) < (?, ?)", tuple(f.older_than or ())),
        )
        where = ["s.crop IS NOT NULL", *(sql for applies, sql, _ in terms if applies)]
        params = [p for applies, _, values in terms if applies for p in values]
        rows = self.conn.execute(f"{_ITEMS} WHERE {' AND '.join(where)} ORDER BY s.time DESC, s.id DESC LIMIT ?",
                                 (*params, f.limit)).fetchall()
        return [_item(r) for r in rows]

    def sighting(self, sighting: int) -> ReviewItem | None:
        row = self.conn.execute(f"{_ITEMS} WHERE s.id = ?", (sighting,)).fetchone()
        return None if row is None else _item(row)

    def picture(self, sighting: int, synthetic: bool = False) -> bytes | None:
        """The JPEG of a sighting's face as the camera saw it, or of its reconstruction."""
        column = "reconstruction" if synthetic else "crop"
        row = self.conn.execute(f"SELECT {column} FROM sightings WHERE id = ?", (sighting,)).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def streams(self) -> list[str]:
        """Every camera with a face sighting in the store (this run's and earlier runs')."""
        return [r[0] for r in self.conn.execute("SELECT DISTINCT stream FROM tracks ORDER BY stream").fetchall()]

    def identities(self, faces_each: int = 6) -> list[dict]:
        """People and pseudo-identities, with their newest faces' crop ids and how often each was seen."""
        seen = dict(self.conn.execute(
            "SELECT identity_id, count(*) FROM tracks WHERE identity_id IS NOT NULL GROUP BY identity_id").fetchall())
        out = []
        for identity, name, kind, created, last_seen in self.conn.execute(
                "SELECT id, name, kind, created, last_seen FROM identities ORDER BY kind, name").fetchall():
            faces = self.conn.execute(
                "SELECT id, polarity FROM crops WHERE identity_id = ? ORDER BY polarity DESC, id DESC",
                (identity,)).fetchall()
            positive = [c for c, p in faces if p > 0]
            out.append({"id": identity, "name": name, "kind": kind, "created": created, "last_seen": last_seen,
                        "faces": len(positive), "rejected": len(faces) - len(positive), "tracks": seen.get(identity, 0),
                        "face_ids": positive[:faces_each]})
        return out

    def face_vectors(self, model_id: str) -> list[tuple]:
        """(identity id, name, kind, vector bytes, polarity) of every face embedded by ``model_id``: what
        ``unknown_groups`` groups (read here, under the caller's lock; grouped outside it)."""
        return [tuple(r) for r in self.conn.execute(
            "SELECT i.id, i.name, i.kind, e.vector, c.polarity FROM embeddings e JOIN crops c ON c.id = e.crop_id "
            "JOIN identities i ON i.id = c.identity_id WHERE e.model_id = ?", (model_id,)).fetchall()]

    def face(self, crop: int) -> bytes | None:
        row = self.conn.execute("SELECT jpeg FROM crops WHERE id = ?", (crop,)).fetchone()
        return None if row is None else bytes(row[0])

    def embedding(self, sighting: int) -> tuple[str, np.ndarray] | None:
        row = self.conn.execute("SELECT model_id, embedding FROM sightings WHERE id = ? AND embedding IS NOT NULL",
                                (sighting,)).fetchone()
        return None if row is None else (row[0], decode_vector(row[1]))


@dataclass(frozen=True)
class SearchHit:
    score: float
    item: ReviewItem


class SightingSearch:
    """The most similar face sightings to a face, across every camera and time: a cosine over every stored
    sighting embedding of the model, held in memory and topped up with the rows added since the last search
    (a read of the new rows only). Rows deleted since (retention, an erasure) are found when their details are
    read and dropped; when the store holds fewer rows than the memory, it is read again whole."""

    def __init__(self, reader: ReviewReader, model_id: str):
        self.reader, self.model_id = reader, model_id
        self._lock = threading.Lock()
        self._counted = float("-inf")
        self._clear()

    def _clear(self) -> None:
        self._ids = np.zeros(0, np.int64)
        self._tracks = np.zeros(0, np.int64)
        self._vectors: np.ndarray | None = None
        self._newest = 0  # the newest row read (kept or not)
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # read, not yet joined to the arrays

    def __len__(self) -> int:
        return len(self._ids) + sum(len(c[0]) for c in self._chunks)

    def refresh(self, chunk: int | None = None) -> int:
        """Reads the rows added since the last look (at most ``chunk`` of them); returns how many it read."""
        conn = self.reader.conn
        with self._lock:
            # Rows deleted in bulk (retention, an erasure) are found by a count, which SQLite makes by reading
            # every row: at most every COUNT_EVERY_S. A deleted row met by a search before then is dropped there.
            now = time.monotonic()
            if now - self._counted >= COUNT_EVERY_S:
                self._counted = now
                stored = conn.execute("SELECT count(*) FROM sightings WHERE embedding IS NOT NULL AND model_id = ?",
                                      (self.model_id,)).fetchone()[0]
                if stored < len(self):
                    self._clear()
            rows = conn.execute("SELECT id, track, embedding FROM sightings WHERE id > ? AND embedding IS NOT NULL "
                                "AND model_id = ? ORDER BY id LIMIT ?", (self._newest, self.model_id, chunk or 2**62)
                                ).fetchall()
            if not rows:
                return 0
            self._newest = int(rows[-1][0])
            dim = self._vectors.shape[1] if self._vectors is not None else \
                self._chunks[0][2].shape[1] if self._chunks else len(rows[0][2]) // 4
            kept = [r for r in rows if len(r[2]) == 4 * dim]  # one model id makes one size of vector
            self._chunks.append((np.array([r[0] for r in kept], np.int64), np.array([r[1] for r in kept], np.int64),
                                 np.frombuffer(b"".join(bytes(r[2]) for r in kept), "<f4").reshape(len(kept), dim)))
            return len(rows)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(Holding the lock.) The rows read, in one set of arrays (joined once, not per chunk)."""
        if self._chunks:
            parts = ([(self._ids, self._tracks, self._vectors)] if self._vectors is not None else []) + self._chunks
            self._ids = np.concatenate([p[0] for p in parts])
            self._tracks = np.concatenate([p[1] for p in parts])
            self._vectors = np.concatenate([p[2] for p in parts]).astype(np.float32, copy=False)
            self._chunks = []
        return self._ids, self._tracks, self._vectors

    def search(self, vector: np.ndarray, top: int = 24, exclude_track: int | None = None) -> list[SearchHit]:
        """The ``top`` best-scoring sightings, one per track (its best), best first; none of ``exclude_track``."""
        self.refresh()
        with self._lock:
            ids, tracks, vectors = self._arrays()
        if vectors is None or not len(ids):
            return []
        scores = vectors @ np.asarray(vector, np.float32)
        hits: list[SearchHit] = []
        taken: set[int] = {exclude_track} if exclude_track is not None else set()
        gone: list[int] = []
        for row in np.argsort(-scores):
            if len(hits) >= top:
                break
            if int(tracks[row]) in taken:
                continue
            item = self.reader.sighting(int(ids[row]))
            if item is None:
                gone.append(int(ids[row]))
                continue
            taken.add(int(tracks[row]))
            hits.append(SearchHit(float(scores[row]), item))
        if gone:
            with self._lock:
                ids, tracks, vectors = self._arrays()
                keep = ~np.isin(ids, gone)
                self._ids, self._tracks, self._vectors = ids[keep], tracks[keep], vectors[keep]
        return hits


def unknown_groups(rows: list[tuple], above: float, block: int = 1024) -> list[dict]:
    """Pseudo-identities that look alike, to be named in one go, from ``ReviewReader.face_vectors`` rows: linked
    when any face of one scores at least ``above`` (the naming threshold) with any face of the other, grouped by
    those links (single linkage). Each group has its members (names, most faces first) and the enrolled person
    closest to any of its faces with that score (a suggestion: nothing is named by it), leaving out a person one
    of whose "not this person" faces is as close. Only groups of two or more, or with a person close, are
    listed. The links are worked out ``block`` faces at a time: memory stays flat with thousands of faces."""
    if len({len(r[3]) for r in rows}) != 1:
        return []  # no faces, or vectors of several sizes under one model id
    ids = np.array([r[0] for r in rows], np.int64)
    names = {r[0]: r[1] for r in rows}
    pseudo = np.array([r[2] == "pseudo" for r in rows], bool)
    positive = np.array([r[4] > 0 for r in rows], bool)
    vectors = np.frombuffer(b"".join(bytes(r[3]) for r in rows), "<f4").reshape(len(rows), -1)
    unknown = np.flatnonzero(pseudo & positive)
    parent = {int(i): int(i) for i in ids[unknown]}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, len(unknown), block):
        scores = vectors[unknown[start:start + block]] @ vectors[unknown].T
        for a, b in zip(*np.nonzero(scores >= above)):
            if start + a < b:
                parent[root(int(ids[unknown[start + a]]))] = root(int(ids[unknown[b]]))
    members: dict[int, list[int]] = {}
    for i in parent:
        members.setdefault(root(i), []).append(i)
    faces = {int(i): int(n) for i, n in zip(*np.unique(ids[unknown], return_counts=True))}
    people = np.flatnonzero(~pseudo & positive)
    person_of = ids[people]
    negatives_of: dict[int, list[int]] = {}
    for n in np.flatnonzero(~pseudo & ~positive):
        negatives_of.setdefault(int(ids[n]), []).append(n)
    groups = []
    for group in members.values():
        group_rows = unknown[np.isin(ids[unknown], group)]
        closest = None
        if len(people):
            scores = (vectors[group_rows] @ vectors[people].T).max(axis=0)  # per face of a person
            for person, rows_of in negatives_of.items():
                own = person_of == person
                if own.any() and float((vectors[group_rows] @ vectors[rows_of].T).max()) >= scores[own].max():
                    scores[own] = -np.inf  # an operator said a face this close is not them
            if np.isfinite(scores.max()):
                best = int(scores.argmax())
                closest = {"name": names[int(person_of[best])], "score": round(float(scores[best]), 4)}
        if len(group) > 1 or (closest and closest["score"] >= above):
            groups.append({"members": [names[i] for i in sorted(group, key=lambda i: (-faces[i], names[i]))],
                           "closest": closest})
    return sorted(groups, key=lambda g: (-len(g["members"]), g["members"][0]))
