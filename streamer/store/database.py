"""The store's database: the ``Database`` interface every store class writes through, and its SQLite
backend (the embedded default for one machine). The PostgreSQL backend (streamer/store/postgres.py)
runs the same statements on the same tables for a site of many machines.

Statements are written once, in the subset both accept: ``?`` and ``:name`` parameters, ``RETURNING id``
for a new row's id, ``ON CONFLICT`` upserts.

SQLite is opened with the WAL journal, full sync, foreign keys and secure delete.

Why these settings: WAL lets readers (``streamer gallery list`` while a run writes) work beside the
writer, and a transaction that returned from COMMIT survives ``kill -9`` of the process
(``synchronous=FULL`` also makes it survive a power cut). ``secure_delete`` overwrites erased rows
in the file, so an erased person's crops and vectors do not linger in free pages.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from streamer.errors import OutputError, StreamerError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4

SCHEMA = """
CREATE TABLE identities (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('person', 'pseudo')),  -- pseudo: an unknown face seen again and again
    created REAL NOT NULL,
    last_seen REAL
);
-- A face image of an identity: what enrolment read, or the best crop of a track. polarity -1 is an
-- operator's "not this person": matching keeps that face (and faces like it) away from the identity.
CREATE TABLE crops (
    id INTEGER PRIMARY KEY,
    identity_id INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    polarity INTEGER NOT NULL DEFAULT 1 CHECK (polarity IN (1, -1)),
    jpeg BLOB NOT NULL,  -- the aligned face crop: what `gallery reembed` embeds again
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX crops_identity ON crops(identity_id);
CREATE TABLE embeddings (
    id INTEGER PRIMARY KEY,
    crop_id INTEGER NOT NULL REFERENCES crops(id) ON DELETE CASCADE,
    model_id TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,  -- float32 little-endian, L2-normalised
    UNIQUE (crop_id, model_id)
);
CREATE INDEX embeddings_model ON embeddings(model_id);
CREATE TABLE tracks (
    id INTEGER PRIMARY KEY,
    run TEXT NOT NULL,
    stream TEXT NOT NULL,
    track_id INTEGER NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    identity_id INTEGER REFERENCES identities(id) ON DELETE CASCADE,
    UNIQUE (run, stream, track_id)
);
CREATE INDEX tracks_started ON tracks(started);
-- One row per event (track start, identity decided or changed, occlusion change, track end).
CREATE TABLE sightings (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    type TEXT NOT NULL,
    stream TEXT NOT NULL,
    track INTEGER NOT NULL REFERENCES tracks(id) ON DELETE CASCADE,
    identity_id INTEGER REFERENCES identities(id) ON DELETE CASCADE,
    rejected_identity TEXT,  -- set by "not this person"
    event TEXT NOT NULL,  -- the event as JSON (its sighting id is this row's id)
    crop BLOB,  -- the face at that moment (JPEG)
    model_id TEXT,
    embedding BLOB  -- the track's aggregated embedding at that moment
);
CREATE INDEX sightings_time ON sightings(time);
CREATE INDEX sightings_identity ON sightings(identity_id);
"""

# Schema version N -> N + 1, applied in order inside the transaction that opens an older store.
MIGRATIONS = {
    1: """
-- Each run that writes to the store, and when it last said it was alive: tracks of a run that died
-- without ending them (kill -9, power cut) are told apart from tracks of a run still going.
CREATE TABLE runs (
    id TEXT PRIMARY KEY,  -- tracks.run
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started REAL NOT NULL,
    heartbeat REAL NOT NULL,
    ended REAL,
    outcome TEXT  -- completed | stopped | failed | killed (found dead by another run)
);
-- Open tracks by run (few rows: only tracks not yet ended), and a track's sightings (its latest one,
-- and the cascade when a track is deleted, which otherwise scans every sighting per track).
CREATE INDEX tracks_open ON tracks(run) WHERE ended IS NULL;
CREATE INDEX sightings_track ON sightings(track);
""",
    2: """
-- Every change to the gallery (a face enrolled, a pseudo-identity made, a name given, an erasure), written in
-- the transaction that made it: each run's in-memory index reads what changed since it last looked, so a
-- person enrolled by one run or machine is recognised by all. No reference to identities: an erased
-- identity's change must still be read.
CREATE TABLE gallery_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a run's mark stays valid after a prune empties it
    identity_id INTEGER NOT NULL,
    time REAL NOT NULL
);
CREATE INDEX gallery_changes_time ON gallery_changes(time);
-- A sighting's key, given by the run that writes it: a batch written again after a commit whose answer was lost
-- with the connection is not stored twice.
ALTER TABLE sightings ADD COLUMN event_key TEXT;
CREATE UNIQUE INDEX sightings_event_key ON sightings(event_key);
""",
    3: """
-- The operator console. A face sighting keeps the reconstruction beside the face (shown marked SYNTHETIC) and
-- whether the face was occluded, and the review list reads the newest face sightings (of a camera) first.
ALTER TABLE sightings ADD COLUMN reconstruction BLOB;
ALTER TABLE sightings ADD COLUMN occluded INTEGER;
CREATE INDEX sightings_faces ON sightings(time) WHERE crop IS NOT NULL;
CREATE INDEX sightings_stream_faces ON sightings(stream, time) WHERE crop IS NOT NULL;
-- Every change to the gallery: who (an operator at the console, a command, a run), when and what, written in
-- the transaction that made it. Never pruned; names are kept as text, so an erasure's own row still says whom.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL  -- JSON
);
CREATE INDEX audit_log_time ON audit_log(time);
""",
}


def schema_script() -> str:
    """The whole current schema, for a new database."""
    return "\n".join([SCHEMA] + [MIGRATIONS[v] for v in range(1, SCHEMA_VERSION)])


class StoreUnavailable(OutputError):
    """The store's server cannot be reached now (a restart, a lost connection); it may come back. What was
    being written was not: the caller may keep it and write it again."""


_unavailable_said: dict[str, float] = {}


def say_unavailable(exc: StoreUnavailable, consequence: str, every_s: float = 30.0) -> None:
    """Logs an unreachable store at most every ``every_s`` seconds per consequence: every frame meets it
    during an outage."""
    now = time.monotonic()
    if now - _unavailable_said.get(consequence, -every_s) >= every_s:
        _unavailable_said[consequence] = now
        log.warning("%s: %s", exc, consequence)


class Database:
    """One connection to the store. ``where`` names it in messages (never with a password)."""

    dialect = ""
    where = ""

    def execute(self, sql: str, params=()):
        """A cursor over the statement's rows (``fetchone``, ``fetchall``, ``rowcount``, iteration)."""
        raise NotImplementedError

    def executemany(self, sql: str, rows) -> None:
        raise NotImplementedError

    def insert(self, sql: str, params=()) -> int:
        """Runs an INSERT; returns the new row's id."""
        return self.execute(sql + " RETURNING id", params).fetchall()[0][0]

    def transaction(self) -> contextlib.AbstractContextManager[Database]:
        """One write transaction: committed (durably) when the block ends, rolled back if it raises; a store
        that cannot be written raises ``OutputError`` naming it (one line for the operator)."""
        raise NotImplementedError

    def lock(self, name: str) -> None:
        """(Inside a transaction.) Serialises the writers that take the same lock until the transaction ends."""

    def notify_gallery(self) -> None:
        """(Inside a transaction.) Says to other runs that the gallery changed, once it commits."""

    def listener(self):
        """A ``GalleryListener`` woken by other runs' gallery changes, or None where polling is all there is."""
        return None

    def checkpoint(self) -> None:
        """Makes deleted rows leave the database's files (after an erasure or a prune)."""

    def close(self) -> None:
        raise NotImplementedError


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self._conn, self.path, self.where = conn, path, str(path)

    def execute(self, sql: str, params=()):
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows) -> None:
        self._conn.executemany(sql, rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Database]:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")  # takes the one write lock now: lock() has nothing more to do
            try:
                yield self
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite already rolled back by itself after some errors (SQLITE_FULL)
                    conn.execute("ROLLBACK")
                raise
        except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
            if isinstance(exc, (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)):
                raise  # a bug, not the store's condition
            raise OutputError(f"store: cannot write {self.where}: {exc}") from None

    def checkpoint(self) -> None:
        """Moves the WAL into the main file and empties it: erased data leaves the WAL too."""
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self._conn.close()


MIN_SQLITE = (3, 35)  # RETURNING, which every insert uses


def connect(path: Path, shared: bool = False) -> SqliteDatabase:
    """The store at ``path``, created with its schema when new, upgraded when older (schema 1 gains
    ``runs``, schema 2 the gallery's change log, schema 3 the console's columns and the audit log); a store
    of a newer streamer is refused. ``shared``: the connection may be used from several threads, one at a
    time (the caller serialises them)."""
    path = Path(path)
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise StreamerError(f"store.path: this Python's SQLite is {sqlite3.sqlite_version}; streamer needs "
                            f"{'.'.join(map(str, MIN_SQLITE))} or newer (or a PostgreSQL store.url)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None,  # explicit transactions below
                               check_same_thread=not shared)
    except (OSError, sqlite3.Error) as exc:
        raise StreamerError(f"store.path: cannot open {path}: {exc}") from None
    try:
        mode = _enable_wal(conn)
        if mode.lower() != "wal":
            raise StreamerError(f"store.path: {path}: the file system does not support SQLite's WAL journal")
        for pragma in ("synchronous=FULL", "foreign_keys=ON", "secure_delete=ON", "busy_timeout=30000"):
            conn.execute(f"PRAGMA {pragma}")
        version = _version(conn)
        if version > SCHEMA_VERSION:
            raise StreamerError(f"store.path: {path} was written by a newer streamer (schema {version})")
        if version < SCHEMA_VERSION:
            _create_or_upgrade(conn, path)
    except sqlite3.OperationalError as exc:  # locked past the timeout, read-only, disk I/O: not the file's fault
        conn.close()
        raise StreamerError(f"store.path: cannot open {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StreamerError(f"store.path: {path} is not a streamer database ({exc})") from None
    except StreamerError:
        conn.close()
        raise
    return SqliteDatabase(conn, path)


def _enable_wal(conn: sqlite3.Connection, timeout_s: float = 30.0) -> str:
    """Switches to the WAL journal; returns the journal mode now in force.

    Unlike other statements, the switch can fail with SQLITE_BUSY at once instead of waiting out the
    busy timeout: when several processes open a new file at the same moment, each holds a shared lock
    and needs an exclusive one, and SQLite refuses all but one to avoid a deadlock. So it is retried.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorname", "").startswith("SQLITE_BUSY") or "locked" in str(exc)
            if not busy or time.monotonic() > deadline:
                raise
        time.sleep(random.uniform(0.005, 0.05))  # jittered, so the processes do not collide again in step


def _version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def _create_or_upgrade(conn: sqlite3.Connection, path: Path) -> None:
    """Creates the schema in a new file, or migrates an older store, in one transaction.

    The version is read again inside the transaction: two runs opening the same new file at once both
    see version 0 before either writes; the second gets the write lock only after the first committed,
    and must then find the schema made rather than take it for somebody else's database.
    """
    with SqliteDatabase(conn, path).transaction():
        version = _version(conn)
        if version > SCHEMA_VERSION:
            raise StreamerError(f"store.path: {path} was written by a newer streamer (schema {version})")
        if version == 0:
            if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise StreamerError(f"store.path: {path} is an SQLite database of something else")
            scripts = [SCHEMA] + [MIGRATIONS[v] for v in range(1, SCHEMA_VERSION)]
        else:
            scripts = [MIGRATIONS[v] for v in range(version, SCHEMA_VERSION)]
        for script in scripts:
            for statement in split_script(script):
                conn.execute(statement)
        if version != SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def split_script(script: str) -> list[str]:
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def transaction(db: Database) -> contextlib.AbstractContextManager[Database]:
    return db.transaction()


def checkpoint(db: Database) -> None:
    db.checkpoint()
