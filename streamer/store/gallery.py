"""The gallery's rows: identities (people and pseudo-identities), their face crops and embeddings.

Every embedding carries the id of the model that made it; callers ask for one model's vectors
and never get another's. Crops are kept so a new model can embed them again (``reembed``).

Every change is logged in ``gallery_changes`` in its own transaction (``changes_since``): the in-memory index
of every run on every machine reloads the identities that changed (identify/sync.py). It is also written to
``audit_log`` (who, when, what) in that transaction: ``actor`` says who, e.g. "console alice from 10.0.0.5",
"command root@host", "run 3f2a...".
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from streamer.errors import StreamerError
from streamer.store.database import Database, checkpoint, transaction

PSEUDO_PREFIX = "unknown-"
# How far back a new pseudo-identity looks for one another run made of the same face (create_pseudo).
PSEUDO_RECENT_S = 120.0


def encode_vector(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def decode_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


def encode_crop(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise ValueError("cannot encode crop as JPEG")
    return data.tobytes()


def decode_crop(blob: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)


@dataclass(frozen=True)
class IdentityRow:
    id: int
    name: str
    kind: str  # person | pseudo
    created: float
    last_seen: float | None
    crops: int
    rejected: int  # "not this person" faces
    models: dict[str, int]  # model id -> embeddings


@dataclass(frozen=True)
class ModelVectors:
    """One model's gallery vectors, row-aligned."""

    identity_ids: np.ndarray  # (m,) int64
    polarity: np.ndarray  # (m,) int8: 1 = this person, -1 = not this person
    vectors: np.ndarray  # (m, D) float32
    names: dict[int, str]
    kinds: dict[int, str]


def command_actor() -> str:
    """Who runs a command on this machine, for the audit log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown user"
    return f"command {user}@{socket.gethostname()}"


class GalleryStore:
    def __init__(self, conn: Database, actor: str | None = None):
        self.conn = conn
        self.actor = actor or command_actor()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Database]:
        """A gallery write: one transaction holding the gallery's lock. SQLite has one writer anyway; on
        PostgreSQL the lock makes the check-then-insert of a name or a pseudo-identity atomic across machines,
        and the change log's ids follow the commit order, so no run skips a change that committed late."""
        with transaction(self.conn) as db:
            db.lock("gallery")
            yield db

    # --- what changed -----------------------------------------------------------------------

    def audit(self, action: str, subject: str, **detail) -> None:
        """(Inside a transaction.) One row of the audit log: ``actor`` did ``action`` to ``subject``."""
        self.conn.execute("INSERT INTO audit_log (time, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
                          (time.time(), self.actor, action, subject, json.dumps(detail, sort_keys=True)))

    def audit_log(self, limit: int = 100, before: int | None = None, people_only: bool = False) -> list[dict]:
        """The newest rows of the audit log first (older than row ``before``). ``people_only``: the changes of
        operators and commands, not the runs' own upkeep (pseudo-identities made and fed, retention)."""
        among = " AND actor NOT LIKE 'run %' AND actor NOT LIKE 'retention %'" if people_only else ""
        rows = self.conn.execute(
            f"SELECT id, time, actor, action, subject, detail FROM audit_log WHERE id < ?{among} ORDER BY id DESC "
            "LIMIT ?", (before if before is not None else 2**62, limit)).fetchall()
        return [{"id": i, "time": t, "actor": a, "action": act, "subject": sub, "detail": json.loads(d)}
                for i, t, a, act, sub, d in rows]

    def name_of(self, identity: int) -> str | None:
        row = self.conn.execute("SELECT name FROM identities WHERE id = ?", (identity,)).fetchone()
        return row[0] if row else None

    def note_changed(self, *identities: int, now: float | None = None) -> None:
        """(Inside a transaction.) Logs the identities whose rows change in it, for every run's index."""
        if not identities:
            return
        now = time.time() if now is None else now
        self.conn.executemany("INSERT INTO gallery_changes (identity_id, time) VALUES (?, ?)",
                              [(int(i), now) for i in dict.fromkeys(identities)])
        self.conn.notify_gallery()

    def last_change(self) -> int:
        """The newest change's id (0 for none): read before loading the gallery, so none is missed after it."""
        return self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM gallery_changes").fetchone()[0]

    def changes_since(self, change: int) -> tuple[int, set[int]]:
        """(newest change id, the identities changed after ``change``)."""
        rows = self.conn.execute("SELECT id, identity_id FROM gallery_changes WHERE id > ? ORDER BY id",
                                 (change,)).fetchall()
        return (rows[-1][0] if rows else change), {r[1] for r in rows}

    # --- identities -------------------------------------------------------------------------

    def identity_id(self, name: str) -> int | None:
        row = self.conn.execute("SELECT id FROM identities WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def require(self, name: str) -> int:
        identity = self.identity_id(name)
        if identity is None:
            raise StreamerError(f"gallery: no identity named {name!r} (see 'streamer gallery list')")
        return identity

    def kind(self, identity: int) -> str | None:
        row = self.conn.execute("SELECT kind FROM identities WHERE id = ?", (identity,)).fetchone()
        return row[0] if row else None

    def create(self, name: str, kind: str = "person") -> int:
        now = time.time()
        with self._writing():
            identity = self._insert_identity(name, kind, now)
            self.note_changed(identity, now=now)
            self.audit("created", name, kind=kind)
            return identity

    def _person(self, name: str, now: float) -> int:
        """(Inside a transaction.) The id of person ``name``, inserted if new; refuses a pseudo-identity."""
        row = self.conn.execute("SELECT id, kind FROM identities WHERE name = ?", (name,)).fetchone()
        if row is None:
            return self._insert_identity(name, "person", now)
        if row[1] != "person":
            raise StreamerError(f"gallery: {name!r} is a pseudo-identity; name it with 'streamer gallery name'")
        return row[0]

    def _insert_identity(self, name: str, kind: str, now: float) -> int:
        return self.conn.insert("INSERT INTO identities (name, kind, created, last_seen) VALUES (?, ?, ?, NULL)",
                                (name, kind, now))

    def create_pseudo(self, vector: np.ndarray, crop: np.ndarray, model_id: str, source: str,
                      same_above: float | None = None, recent_s: float = PSEUDO_RECENT_S,
                      resembles: tuple[str, float] | None = None) -> tuple[int, str, bool]:
        """A new pseudo-identity ``unknown-NNNNN`` holding one face: (id, name, True).

        With ``same_above``, a pseudo-identity made in the last ``recent_s`` seconds (by this run or any other,
        perhaps not yet in this run's index) whose face scores at least that is returned instead, (id, name,
        False): two runs meeting the same stranger at once make one pseudo-identity. The check and the insert
        hold one lock across every run sharing the store. ``resembles``: the nearest other pseudo-identity and its
        score, when it came close enough to say so (its audit row says it).
        """
        now = time.time()
        vector = np.asarray(vector, np.float32)
        with self._writing():
            if same_above is not None:
                found = self._recent_pseudo_like(vector, model_id, now - recent_s, same_above)
                if found is not None:
                    return (*found, False)
            # Named after its id, which only the insert knows: a placeholder first (unique, as names must be).
            identity = self._insert_identity(f"{PSEUDO_PREFIX}pending-{now}-{id(vector)}", "pseudo", now)
            name = f"{PSEUDO_PREFIX}{identity:05d}"
            self.conn.execute("UPDATE identities SET name = ?, last_seen = ? WHERE id = ?", (name, now, identity))
            self._insert_face(identity, crop, source, 1, model_id, vector, now)
            self.note_changed(identity, now=now)
            self.audit("pseudo-identity made", name, source=source,
                       **({"resembles": resembles[0], "score": round(resembles[1], 3)} if resembles else {}))
        return identity, name, True

    def _recent_pseudo_like(self, vector: np.ndarray, model_id: str, since: float, same_above: float
                            ) -> tuple[int, str] | None:
        rows = self.conn.execute(
            "SELECT i.id, i.name, e.vector FROM identities i JOIN crops c ON c.identity_id = i.id "
            "JOIN embeddings e ON e.crop_id = c.id WHERE i.kind = 'pseudo' AND i.created >= ? AND c.polarity = 1 "
            "AND e.model_id = ? AND e.dim = ?", (since, model_id, int(vector.shape[-1]))).fetchall()
        best = None
        for identity, name, blob in rows:
            score = float(decode_vector(blob) @ vector)
            if score >= same_above and (best is None or score > best[2]):
                best = (identity, name, score)
        return None if best is None else (best[0], best[1])

    def add_face(self, identity: int, crop: np.ndarray, source: str, model_id: str, vector: np.ndarray,
                 polarity: int = 1, keep_latest: int | None = None) -> int:
        """Stores one face (crop + its embedding) of an identity; ``keep_latest`` caps how many
        positive faces the identity keeps (oldest dropped): pseudo-identities follow a face over time."""
        now = time.time()
        with self._writing():
            crop_id = self._insert_face(identity, crop, source, polarity, model_id, vector, now)
            self.note_changed(identity, now=now)
            self.audit("face added" if polarity > 0 else "negative face added", self.name_of(identity) or "",
                       source=source, crop=crop_id)
            if keep_latest:
                self.conn.execute(
                    "DELETE FROM crops WHERE identity_id = ? AND polarity = 1 AND id NOT IN "
                    "(SELECT id FROM crops WHERE identity_id = ? AND polarity = 1 ORDER BY id DESC LIMIT ?)",
                    (identity, identity, keep_latest),
                )
        return crop_id

    def _insert_face(self, identity: int, crop: np.ndarray, source: str, polarity: int, model_id: str,
                     vector: np.ndarray, now: float) -> int:
        jpeg = encode_crop(crop)
        crop_id = self.conn.insert(
            "INSERT INTO crops (identity_id, polarity, jpeg, source, sha256, created) VALUES (?, ?, ?, ?, ?, ?)",
            (identity, polarity, jpeg, source, hashlib.sha256(jpeg).hexdigest(), now),
        )
        self.conn.execute(
            "INSERT INTO embeddings (crop_id, model_id, dim, vector) VALUES (?, ?, ?, ?)",
            (crop_id, model_id, int(vector.shape[-1]), encode_vector(vector)),
        )
        return crop_id

    def enroll_face(self, name: str, crop: np.ndarray, source: str, model_id: str, vector: np.ndarray
                    ) -> tuple[int, int | None]:
        """Adds a photo's face to person ``name`` unless that photo (``source``) is there already, creating
        the person if new: (identity id, new crop id or None when the photo was enrolled before).

        One transaction for the look-ups and the inserts, so runs enrolling the same ``gallery.dir`` at
        once add each person and each photo once. The embedding is computed before, outside it: the
        write lock is held for milliseconds, not for a model's inference.
        """
        now = time.time()
        with self._writing():
            identity = self._person(name, now)
            if self.has_source(identity, source):
                return identity, None
            self.note_changed(identity, now=now)
            crop_id = self._insert_face(identity, crop, source, 1, model_id, vector, now)
            self.audit("face enrolled", name, source=source, crop=crop_id)
            return identity, crop_id

    def has_source(self, identity: int, source: str) -> bool:
        return self.conn.execute(
            "SELECT 1 FROM crops WHERE identity_id = ? AND source = ?", (identity, source)
        ).fetchone() is not None

    def list(self) -> list[IdentityRow]:
        rows = []
        for identity, name, kind, created, last_seen in self.conn.execute(
            "SELECT id, name, kind, created, last_seen FROM identities ORDER BY kind, name"
        ).fetchall():
            crops = dict(self.conn.execute(
                "SELECT polarity, count(*) FROM crops WHERE identity_id = ? GROUP BY polarity", (identity,)
            ).fetchall())
            models = dict(self.conn.execute(
                "SELECT e.model_id, count(*) FROM embeddings e JOIN crops c ON c.id = e.crop_id "
                "WHERE c.identity_id = ? GROUP BY e.model_id", (identity,)
            ).fetchall())
            rows.append(IdentityRow(identity, name, kind, created, last_seen, crops.get(1, 0), crops.get(-1, 0),
                                    models))
        return rows

    def face_files(self, identity: int) -> list[tuple[int, int, str, bytes]]:
        """(crop id, polarity, source, JPEG bytes as stored) of every face of an identity: for export,
        which copies the stored crops rather than decoding and re-encoding them."""
        return self.conn.execute(
            "SELECT id, polarity, source, jpeg FROM crops WHERE identity_id = ? ORDER BY id", (identity,)
        ).fetchall()

    def embeddings_of(self, crop_id: int) -> dict[str, np.ndarray]:
        """Model id -> the crop's embedding by that model."""
        return {m: decode_vector(v) for m, v in self.conn.execute(
            "SELECT model_id, vector FROM embeddings WHERE crop_id = ? ORDER BY model_id", (crop_id,))}

    def model_ids(self) -> dict[str, int]:
        """Model id -> identities with at least one face embedded by it."""
        return dict(self.conn.execute(
            "SELECT e.model_id, count(DISTINCT c.identity_id) FROM embeddings e JOIN crops c ON c.id = e.crop_id "
            "WHERE c.polarity = 1 GROUP BY e.model_id"
        ).fetchall())

    def vectors(self, model_id: str, only: set[int] | None = None) -> ModelVectors:
        """One model's vectors of every identity, or of the identities in ``only`` (those that changed)."""
        among, params = "", (model_id,)
        if only is not None:
            ids = sorted(int(i) for i in only) or [0]  # ids start at 1: [0] selects nothing
            among, params = f" AND c.identity_id IN ({', '.join('?' * len(ids))})", (model_id, *ids)
        rows = self.conn.execute(
            "SELECT c.identity_id, c.polarity, e.dim, e.vector FROM embeddings e JOIN crops c ON c.id = e.crop_id "
            f"WHERE e.model_id = ?{among} ORDER BY c.identity_id, c.id", params
        ).fetchall()
        identities = self.conn.execute(
            "SELECT id, name, kind FROM identities" + (among.replace(" AND c.identity_id", " WHERE id")),
            params[1:]).fetchall()
        # Two reads: an identity erased or merged away between them leaves vectors without a name. They go.
        named = {i for i, _, _ in identities}
        rows = [r for r in rows if r[0] in named]
        dims = {r[2] for r in rows}
        if len(dims) > 1:
            raise StreamerError(f"gallery: model {model_id} has embeddings of several sizes {sorted(dims)}")
        dim = dims.pop() if dims else 0
        vectors = np.frombuffer(b"".join(r[3] for r in rows), dtype="<f4").reshape(len(rows), dim) if rows else \
            np.zeros((0, 0), np.float32)
        return ModelVectors(
            identity_ids=np.array([r[0] for r in rows], np.int64),
            polarity=np.array([r[1] for r in rows], np.int8),
            vectors=vectors.astype(np.float32),
            names={i: n for i, n, _ in identities},
            kinds={i: k for i, _, k in identities},
        )

    def missing_embeddings(self, model_id: str) -> list[tuple[int, np.ndarray]]:
        """(crop id, image) of every crop without an embedding from ``model_id``."""
        return [(i, decode_crop(j)) for i, j in self.conn.execute(
            "SELECT id, jpeg FROM crops WHERE id NOT IN (SELECT crop_id FROM embeddings WHERE model_id = ?)",
            (model_id,),
        )]

    def add_embeddings(self, model_id: str, items: list[tuple[int, np.ndarray]]) -> None:
        with self._writing():
            self.conn.executemany(
                "INSERT INTO embeddings (crop_id, model_id, dim, vector) VALUES (?, ?, ?, ?) ON CONFLICT "
                "(crop_id, model_id) DO UPDATE SET dim = excluded.dim, vector = excluded.vector",
                [(crop_id, model_id, int(v.shape[-1]), encode_vector(v)) for crop_id, v in items],
            )
            ids = sorted({int(c) for c, _ in items})
            self.audit("faces embedded again", "*", model=model_id, faces=len(ids))
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                self.note_changed(*(r[0] for r in self.conn.execute(
                    f"SELECT DISTINCT identity_id FROM crops WHERE id IN ({', '.join('?' * len(chunk))})", chunk)))

    def drop_other_models(self, model_id: str) -> int:
        with self._writing():
            changed = [r[0] for r in self.conn.execute(
                "SELECT DISTINCT c.identity_id FROM embeddings e JOIN crops c ON c.id = e.crop_id "
                "WHERE e.model_id != ?", (model_id,))]
            self.note_changed(*changed)
            dropped = self.conn.execute("DELETE FROM embeddings WHERE model_id != ?", (model_id,)).rowcount
            self.audit("other models' embeddings dropped", "*", kept=model_id, dropped=dropped)
            return dropped

    # --- operator actions -------------------------------------------------------------------

    def erase(self, name: str) -> dict[str, int]:
        """Removes a person entirely: identity, crops, vectors, tracks and sightings naming them."""
        identity = self.require(name)
        counts = {}
        with self._writing():
            for table, column in (("sightings", "identity_id"), ("tracks", "identity_id"), ("crops", "identity_id")):
                counts[table] = self.conn.execute(f"SELECT count(*) FROM {table} WHERE {column} = ?",
                                                  (identity,)).fetchone()[0]
            # The cascades delete crops, embeddings, tracks and their sightings with the identity.
            self.conn.execute("DELETE FROM identities WHERE id = ?", (identity,))
            self.note_changed(identity)
            self.audit("erased", name, **counts)
        checkpoint(self.conn)
        return counts

    def rename(self, name: str, new_name: str) -> str:
        """Names a pseudo-identity (or renames a person). Naming it after an existing person merges the two."""
        identity = self.require(name)
        if new_name.startswith(PSEUDO_PREFIX):
            raise StreamerError(f"gallery: names starting {PSEUDO_PREFIX!r} are kept for pseudo-identities")
        with self._writing():
            if self.name_of(identity) != name:  # renamed, merged or erased since it was looked up
                raise StreamerError(f"gallery: {name!r} changed meanwhile; look again")
            return self._rename(identity, name, new_name)

    def _rename(self, identity: int, name: str, new_name: str, **why) -> str:
        """(Inside a gallery write.)"""
        target = self.identity_id(new_name)  # inside the transaction: a concurrent enrolment may add it
        if target == identity:
            return "kept"
        self.note_changed(identity, *(() if target is None else (target,)))
        if target is None:
            self.conn.execute("UPDATE identities SET name = ?, kind = 'person' WHERE id = ?", (new_name, identity))
            self.audit("renamed", name, to=new_name, **why)
            return "renamed"
        if self.kind(target) != "person":
            raise StreamerError(f"gallery: {new_name!r} is a pseudo-identity; name it first")
        for table in ("crops", "tracks", "sightings"):
            self.conn.execute(f"UPDATE {table} SET identity_id = ? WHERE identity_id = ?", (target, identity))
        self.conn.execute("DELETE FROM identities WHERE id = ?", (identity,))
        self.audit("merged", name, into=new_name, **why)
        return "merged"

    def _sighting_row(self, sighting: int) -> tuple:
        """(Inside a gallery write: what it says cannot change before the change is made.) (identity id, crop,
        model id, embedding, tracks row, identity name, identity kind) of a sighting."""
        row = self.conn.execute(
            "SELECT s.identity_id, s.crop, s.model_id, s.embedding, s.track, i.name, i.kind FROM sightings s "
            "LEFT JOIN identities i ON i.id = s.identity_id WHERE s.id = ?", (sighting,)
        ).fetchone()
        if row is None:
            raise StreamerError(f"gallery: no sighting {sighting}")
        return tuple(row)

    def reject(self, sighting: int) -> str:
        """"Not this person": the sighting's face becomes a negative example of the identity it was given,
        and the sighting (and its track) no longer name it. Returns the identity's name."""
        with self._writing():
            identity, crop, model_id, embedding, track, name, _ = self._sighting_row(sighting)
            if identity is None:
                raise StreamerError(f"gallery: sighting {sighting} names nobody")
            if crop is None or embedding is None:
                raise StreamerError(f"gallery: sighting {sighting} has no face stored (only identity events have "
                                    "one)")
            self._unname_track(identity, name, track, sighting, decode_crop(crop), model_id, decode_vector(embedding),
                               time.time())
            self.audit("rejected", name, sighting=sighting)
        return name

    def _track_faces(self, track: int) -> list[str]:
        """The crop sources that hold faces of a track: the run's (its track key) and the console's (its sightings)."""
        row = self.conn.execute("SELECT stream, track_id FROM tracks WHERE id = ?", (track,)).fetchone()
        sightings = [r[0] for r in self.conn.execute("SELECT id FROM sightings WHERE track = ?", (track,))]
        return ([f"track {row[0]}:{row[1]}"] if row else []) + [f"assigned sighting {s}" for s in sightings]

    def _unname_track(self, identity: int, name: str, track: int, sighting: int, crop: np.ndarray, model_id: str,
                      vector: np.ndarray, now: float) -> None:
        """(Inside a gallery write.) The face becomes a negative of ``identity``; the track no longer names it,
        and the faces it gave the identity (as the run's track, or assigned at the console) go."""
        self._insert_face(identity, crop, f"rejected sighting {sighting}", -1, model_id, vector, now)
        self.note_changed(identity, now=now)
        self.conn.execute("UPDATE sightings SET identity_id = NULL, rejected_identity = ? WHERE track = ? "
                          "AND identity_id = ?", (name, track, identity))
        self.conn.execute("UPDATE tracks SET identity_id = NULL WHERE id = ? AND identity_id = ?", (track, identity))
        for source in self._track_faces(track):
            self.conn.execute("DELETE FROM crops WHERE identity_id = ? AND polarity = 1 AND source = ?",
                              (identity, source))

    def assign(self, sighting: int, name: str) -> str:
        """"This is ``name``" (a person, made if new): the sighting's face joins them, and its track names them.

        A sighting of a pseudo-identity names the whole pseudo-identity (as ``rename``: every face and sighting of
        that unknown face goes, merged into the person if they exist). A sighting of another person makes the
        face a negative of that person first, as ``reject`` does. An earlier "not ``name``" of this track is
        taken back. Returns what was done: "assigned", "renamed", "merged" or "kept" (already theirs)."""
        with self._writing():
            identity, crop, model_id, embedding, track, current, kind = self._sighting_row(sighting)
            if kind == "pseudo":
                return self._rename(identity, current, name, sighting=sighting)
            if current == name:
                return "kept"
            if crop is None or embedding is None:
                raise StreamerError(f"gallery: sighting {sighting} has no face stored (only identity events have "
                                    "one)")
            image, vector, now = decode_crop(crop), decode_vector(embedding), time.time()
            target = self._person(name, now)
            if identity is not None:
                self._unname_track(identity, current, track, sighting, image, model_id, vector, now)
            track_sightings = [r[0] for r in self.conn.execute("SELECT id FROM sightings WHERE track = ?", (track,))]
            for rejected in track_sightings:  # "not NAME" said of this track before is taken back
                self.conn.execute("DELETE FROM crops WHERE identity_id = ? AND polarity = -1 AND source = ?",
                                  (target, f"rejected sighting {rejected}"))
            self.conn.execute("UPDATE sightings SET rejected_identity = NULL WHERE track = ? AND rejected_identity = ?",
                              (track, name))
            self._insert_face(target, image, f"assigned sighting {sighting}", 1, model_id, vector, now)
            self.note_changed(target, now=now)
            self.conn.execute("UPDATE sightings SET identity_id = ? WHERE track = ? AND identity_id IS NULL",
                              (target, track))
            self.conn.execute("UPDATE tracks SET identity_id = ? WHERE id = ?", (target, track))
            self.audit("assigned", name, sighting=sighting, **({"was": current} if current else {}))
        return "assigned"
