"""The store on a real PostgreSQL server: the SQLite store's semantics, one gallery across runs and machines
(changes seen within 2 s, one pseudo-identity per stranger), sightings kept while the server restarts,
and a password that appears nowhere."""

from __future__ import annotations

import json
import shutil
import threading
import time

import numpy as np
import pytest

from streamer.config import parse_config
from streamer.errors import ConfigError, OutputError
from streamer.identify.gallery import GalleryIndex
from streamer.identify.sync import GallerySync
from streamer.records import Decision, EventKind, TrackEvent
from streamer.runtime.emit import Emitter
from streamer.store.database import SCHEMA, connect
from streamer.store.gallery import GalleryStore
from streamer.store.postgres import PostgresDatabase
from streamer.store.runs import RunRegistry
from streamer.store.sightings import SightingStore
from tests.conftest import need_shared, noise_crop, run_cli, unit_vector
from tests.postgres import PASSWORD
from tests.processes import StreamerProcess

MODEL = "test-model"


_unit, _crop = unit_vector, noise_crop


def _event(track: int, when: float, kind=EventKind.TRACK_START, identity: int | None = None,
           name: str | None = None) -> TrackEvent:
    if identity is None:
        return TrackEvent(kind, "cam", track, when)
    decision = Decision(identity, name, False, 0.9, "visible", 0.9, None, 0.5, ())
    return TrackEvent(kind, "cam", track, when, decision=decision, crop=_crop(track), embedding=_unit(track),
                      model_id=MODEL)


def _gallery_story(db) -> dict:
    """What an operator does to a gallery over a day, and what the store says after each step."""
    store = GalleryStore(db)
    said = {}
    alice, _ = store.enroll_face("alice", _crop(1), "alice.jpg", MODEL, _unit(1))
    said["enrolled again"] = store.enroll_face("alice", _crop(1), "alice.jpg", MODEL, _unit(1))[1]
    bob = store.create("bob")
    store.add_face(bob, _crop(2), "bob.jpg", MODEL, _unit(2))
    pseudo, pseudo_name, made = store.create_pseudo(_unit(3), _crop(3), MODEL, "pseudo-identity")
    said["pseudo"] = (pseudo_name == f"unknown-{pseudo:05d}", made)
    for track in range(4):
        store.add_face(pseudo, _crop(10 + track), f"pseudo face {track}", MODEL, _unit(3), keep_latest=2)
    registry = RunRegistry(db)
    registry.start("run-1")
    sightings = SightingStore(db, "run-1")
    now = time.time()
    recorded = sightings.record([_event(1, now), _event(1, now + 1, EventKind.IDENTITY, bob, "bob"),
                                 _event(2, now + 2), _event(2, now + 3, EventKind.IDENTITY, pseudo, pseudo_name),
                                 _event(3, now + 4), _event(3, now + 5, EventKind.IDENTITY, alice, "alice")])
    said["sighting ids rise"] = [s.id for s in recorded] == sorted(s.id for s in recorded)
    said["renamed"] = store.rename(pseudo_name, "carol")
    said["merged"] = store.rename("carol", "alice")  # carol was alice all along
    said["rejected"] = store.reject(recorded[5].id)  # track 3 was not alice: her negative face now
    said["erased"] = store.erase("bob")
    registry.finish("completed")
    said["list"] = [(r.name, r.kind, r.crops, r.models) for r in store.list()]
    vectors = store.vectors(MODEL)
    said["vectors"] = (vectors.vectors.shape, sorted(set(vectors.identity_ids.tolist())) == [alice])
    said["tracks"] = db.execute("SELECT stream, track_id, ended IS NOT NULL FROM tracks ORDER BY track_id").fetchall()
    said["pruned"] = sightings.prune(30, now=now + 31 * 86400, stale_after_s=0)
    said["left"] = [db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                    for t in ("identities", "crops", "embeddings", "tracks", "sightings")]
    return said


def test_the_postgresql_store_keeps_a_gallery_exactly_as_the_sqlite_store(tmp_path, postgres_url):
    on_sqlite = _gallery_story(connect(tmp_path / "s.db"))
    on_postgres = _gallery_story(PostgresDatabase(postgres_url))
    assert on_postgres == on_sqlite
    # The story itself, so that two equally wrong stores do not pass.
    assert on_sqlite["enrolled again"] is None and on_sqlite["pseudo"] == (True, True)
    assert on_sqlite["merged"] == "merged" and on_sqlite["erased"]["tracks"] == 1
    # alice's photo, carol's 2 latest faces, and the face that was not her
    assert on_sqlite["list"] == [("alice", "person", 3, {MODEL: 4})] and on_sqlite["rejected"] == "alice"
    assert on_sqlite["left"] == [1, 4, 4, 0, 0]


def test_events_written_again_under_their_keys_are_stored_once_and_a_vanished_identity_is_nobody(tmp_path,
                                                                                               postgres_url):
    now = time.time()
    for db in (connect(tmp_path / "s.db"), PostgresDatabase(postgres_url)):
        store = GalleryStore(db)
        bob = store.create("bob")
        events = [_event(1, now), _event(1, now + 1, EventKind.IDENTITY, bob, "bob")]
        first = SightingStore(db, "r").record(events, ["r:1", "r:2"])
        # The commit went through but its answer was lost with the connection: the run writes the batch again.
        again = SightingStore(db, "r").record(events, ["r:1", "r:2"])
        assert [s.id for s in again] == [s.id for s in first]
        assert db.execute("SELECT count(*) FROM sightings").fetchone()[0] == 2
        store.erase("bob")  # while an event naming him waited for the store
        late = SightingStore(db, "r").record([_event(2, now + 2, EventKind.IDENTITY, bob, "bob")], ["r:3"])
        assert db.execute("SELECT identity_id FROM sightings WHERE id = ?", (late[0].id,)).fetchone()[0] is None


def test_a_face_enrolled_on_one_machine_is_matched_by_another_runs_index_within_2_s(postgres_url):
    here, there = PostgresDatabase(postgres_url), PostgresDatabase(postgres_url)
    store = GalleryStore(here)
    since = store.last_change()
    index = GalleryIndex.load(store, MODEL, "test")
    sync = GallerySync(store, index, since, here.listener(), every_s=30)  # the poll alone would take 30 s
    try:
        time.sleep(0.5)  # the listener connects
        sync.poll()
        started = time.monotonic()
        GalleryStore(there).enroll_face("dana", _crop(4), "dana.jpg", MODEL, _unit(4))
        while index.best(_unit(4)) is None and time.monotonic() - started < 5:
            sync.poll()
            time.sleep(0.01)
        took = time.monotonic() - started
        best = index.best(_unit(4))
        assert best is not None and best.name == "dana" and best.score > 0.99
        assert took < 2.0, took
        GalleryStore(there).erase("dana")
        deadline = time.monotonic() + 2
        while index.best(_unit(4)) is not None and time.monotonic() < deadline:
            sync.poll()
            time.sleep(0.01)
        assert index.best(_unit(4)) is None  # an erasure reaches every run too
    finally:
        sync.close()


def test_two_runs_meeting_the_same_stranger_at_once_make_one_pseudo_identity(postgres_url):
    stranger = _unit(5)
    barrier, made = threading.Barrier(4), []

    def meet(seed: int) -> None:
        store = GalleryStore(PostgresDatabase(postgres_url))
        seen = stranger + np.random.default_rng(seed).normal(scale=0.02, size=stranger.shape).astype(np.float32)
        barrier.wait()
        made.append(store.create_pseudo(seen / np.linalg.norm(seen), _crop(seed), MODEL, "pseudo-identity",
                                        same_above=0.6))

    workers = [threading.Thread(target=meet, args=(seed,)) for seed in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert len(made) == 4 and len({m[0] for m in made}) == 1 and sum(m[2] for m in made) == 1
    other = GalleryStore(PostgresDatabase(postgres_url)).create_pseudo(_unit(6), _crop(6), MODEL, "p", same_above=0.6)
    assert other[2] and other[0] != made[0][0]  # somebody else is somebody else


def test_sightings_wait_while_the_database_restarts_and_none_is_lost(postgres_server, postgres_url, caplog):
    db = PostgresDatabase(postgres_url)
    emitter = Emitter(SightingStore(db, "run-r"), [], buffer_events=50)
    now = time.time()
    emitter.emit([_event(1, now)])
    postgres_server.stop()
    try:
        for i in range(2, 12):  # the cameras go on while the server is away
            emitter.emit([_event(i, now + i)])
        assert len(emitter.pending) == 10 and emitter.count == 1
        assert any("events are kept" in r.getMessage() for r in caplog.records)
    finally:
        postgres_server.start()
    deadline = time.monotonic() + 10
    while emitter.pending and time.monotonic() < deadline:
        time.sleep(0.2)
        emitter.flush()
    assert emitter.count == 11 and not emitter.pending
    rows = db.execute("SELECT s.time, t.track_id FROM sightings s JOIN tracks t ON t.id = s.track ORDER BY s.id")
    assert [r[1] for r in rows.fetchall()] == list(range(1, 12))  # every one, in order

    postgres_server.stop()  # a longer outage than the buffer holds: the run stops, and says why
    try:
        with pytest.raises(OutputError, match="store.buffer_events"):
            for i in range(100):
                emitter.emit([_event(100 + i, now)])
    finally:
        postgres_server.start()


def test_a_store_url_is_checked_and_its_password_is_never_shown(tmp_path, postgres_server, postgres_url):
    with pytest.raises(ConfigError, match="store.url: must be a postgresql:// URL"):
        parse_config({"store": {"url": "mysql://u:pw@h/db"}})
    with pytest.raises(ConfigError, match="give one"):
        parse_config({"store": {"url": postgres_url, "path": str(tmp_path / "s.db")}})
    wrong = postgres_url.replace(PASSWORD, "not-the-password")
    with pytest.raises(ConfigError) as refused:
        PostgresDatabase(wrong)
    assert "password authentication failed" in str(refused.value) and "not-the-password" not in str(refused.value)

    config = tmp_path / "pg.yaml"
    config.write_text(f"store: {{url: '{postgres_url}'}}\n")
    shown = run_cli("config", "show", str(config))
    assert shown.returncode == 0 and PASSWORD not in shown.stdout and "***" in shown.stdout
    down = tmp_path / "down.yaml"
    down.write_text(f"store: {{url: 'postgresql://streamer:{PASSWORD}@127.0.0.1:9/db'}}\n"
                    f"sources: [{{name: cam, uri: '{tmp_path}'}}]\n")
    result = run_cli("run", str(down), "--out", str(tmp_path / "out"), "-q")
    assert result.returncode == 2, result.stderr
    assert "store.url: cannot connect to postgresql://streamer@127.0.0.1:9/db" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1


@pytest.mark.shared_models
def test_a_run_names_a_person_enrolled_meanwhile_by_another_process(tmp_path, postgres_url):
    """Two processes, one PostgreSQL store: a run watching a snapshot folder, and an operator enrolling a
    person with `streamer gallery enroll` while it runs. Two seconds later the run names that person from
    another photo of them."""
    faces = need_shared("data", "faces", "identities", "knn_examples")
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    config = tmp_path / "pg.yaml"
    config.write_text(f"store: {{url: '{postgres_url}'}}\n"
                      f"sources: [{{name: door, uri: '{snapshots}', watch: true, fps: 5}}]\n"
                      "identity: {min_frames: 2, pseudo_identities: false}\n")
    out = tmp_path / "out"
    run = StreamerProcess(config, "--out", str(out))
    try:
        run.wait_for_line(r"door: ")  # the models are loaded and the gallery read: the run is going
        enrolled = run_cli("gallery", "enroll", "obama", str(faces / "train" / "obama"), "--config", str(config))
        assert enrolled.returncode == 0, enrolled.stderr
        time.sleep(2.0)
        for i in range(4):  # another photo of him, seen on four snapshots
            shutil.copy(faces / "test" / "obama1.jpg", snapshots / f"{i:03d}.jpg")
            time.sleep(0.3)
        events_file = out / "latest" / "events.jsonl"
        deadline = time.monotonic() + 60
        named = []
        while not named and time.monotonic() < deadline:
            if events_file.exists():
                named = [e for e in map(json.loads, events_file.read_text().splitlines())
                         if e.get("identity") == "obama"]
            time.sleep(0.5)
    finally:
        run.proc.send_signal(2)
        code = run.finish()
    assert named, run.stderr
    assert code == 130, run.stderr  # stopped by SIGINT, as a service manager stops it
    assert PASSWORD not in run.stderr + run.stdout
    manifest = json.loads((out / "latest" / "run.json").read_text())
    assert manifest["store"].startswith("postgresql://streamer@127.0.0.1:") and PASSWORD not in json.dumps(manifest)


@pytest.mark.shared_models
def test_a_run_keeps_processing_while_the_database_restarts_and_writes_every_event(tmp_path, postgres_server,
                                                                                    postgres_url):
    from tests.test_cluster import _clip, _photo_frame

    faces = need_shared("data", "faces", "identities", "knn_examples", "train")
    photos = [sorted((faces / person).iterdir())[0] for person in ("obama", "biden", "kit_harington", "rose_leslie")]
    # 24 s at 10 fps: four people, then an empty scene, twice over; every person a new track.
    blank = [np.full((480, 640, 3), 90, np.uint8)] * 10
    frames = [f for _ in range(2) for photo in photos for f in [_photo_frame(photo)] * 20 + blank]
    clip = _clip(tmp_path / "lobby.mp4", frames)
    config = tmp_path / "pg.yaml"
    config.write_text(f"store: {{url: '{postgres_url}'}}\nsources: [{{name: lobby, uri: '{clip}', realtime: true}}]\n")
    out = tmp_path / "out"
    run = StreamerProcess(config, "--out", str(out))
    run.wait_for_line(r"^lobby")  # its progress: the run is going
    time.sleep(4)
    postgres_server.stop()  # the database goes away mid-run, until events have had to wait for it (at most 40 s)
    try:
        deadline = time.monotonic() + 40
        while "events are kept" not in run.stderr and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)
    finally:
        postgres_server.start()
    code = run.finish(timeout=120)
    assert code == 0, run.stderr
    assert "events are kept" in run.stderr and "answering again" in run.stderr, run.stderr.replace("\r", "\n")[-4000:]
    events = [json.loads(line) for line in (out / "latest" / "events.jsonl").read_text().splitlines()]
    manifest = json.loads((out / "latest" / "run.json").read_text())
    assert manifest["frames"] == {"lobby": len(frames)}  # the camera never waited for the database
    stored = PostgresDatabase(postgres_url).execute(
        "SELECT id, type FROM sightings WHERE stream = 'lobby' ORDER BY id").fetchall()
    # Every event committed once, then written: the file and the store hold the same sightings, in order.
    assert [e["sighting"] for e in events] == [r[0] for r in stored]
    assert [e["type"] for e in events] == [r[1] for r in stored]
    starts = sum(e["type"] == "track_start" for e in events)
    assert starts >= 4 and starts == sum(e["type"] == "track_end" for e in events)


def test_a_schema_3_store_is_upgraded_and_the_console_reviews_names_and_audits_on_it(postgres_url):
    """A store written before the console (schema 3) gains the console's columns and audit log in place; the
    console's review list, assignment and audit then read and write it as they do SQLite."""
    import psycopg

    from streamer.store.database import MIGRATIONS, SCHEMA_VERSION, split_script
    from streamer.store.postgres import postgres_schema
    from streamer.store.review import ReviewFilter, ReviewReader

    with psycopg.connect(postgres_url, autocommit=True) as raw:  # what schema 3 made, and a sighting in it
        schema_3 = "\n".join([SCHEMA] + [MIGRATIONS[v] for v in range(1, 3)])
        for statement in split_script(postgres_schema(schema_3)):
            raw.execute(statement)
        raw.execute("CREATE TABLE streamer_schema (version INTEGER NOT NULL)")
        raw.execute("INSERT INTO streamer_schema VALUES (3)")
        raw.execute("INSERT INTO tracks (run, stream, track_id, started) VALUES ('old', 'cam', 1, 1.0)")
        raw.execute("INSERT INTO sightings (time, type, stream, track, event, crop) VALUES "
                    "(1.0, 'identity', 'cam', 1, '{}', '\\xffd8'::bytea)")
    db = PostgresDatabase(postgres_url)
    assert db.execute("SELECT version FROM streamer_schema").fetchall() == [(SCHEMA_VERSION,)]
    reader = ReviewReader(db)
    [old] = reader.sightings(ReviewFilter())
    assert (old.stream, old.identity, old.occluded, old.reconstructed) == ("cam", None, False, False)

    now = time.time()
    SightingStore(db, "run-a").record([_event(7, now, EventKind.IDENTITY, identity=None)])
    store = GalleryStore(db, actor="console alice from 10.0.0.5")
    dana, _ = store.enroll_face("dana", _crop(4), "dana.jpg", MODEL, _unit(4))
    decision = Decision(dana, "dana", False, 0.9, "visible", 0.9, None, 0.5, ())
    SightingStore(db, "run-a").record([TrackEvent(EventKind.IDENTITY, "door", 8, now + 1, decision=decision,
                                                  crop=_crop(8), embedding=_unit(8), model_id=MODEL,
                                                  reconstruction=_crop(9))])
    newest = reader.sightings(ReviewFilter(limit=1))[0]
    assert (newest.stream, newest.identity, newest.reconstructed) == ("door", "dana", True)
    assert reader.picture(newest.id, synthetic=True)[:2] == b"\xff\xd8"
    assert [i.stream for i in reader.sightings(ReviewFilter(person="dana"))] == ["door"]
    paged = reader.sightings(ReviewFilter(older_than=(newest.time, newest.id)))
    assert newest.id not in [i.id for i in paged] and paged

    assert store.assign(newest.id, "erin") == "assigned"
    assert reader.sighting(newest.id).identity == "erin"
    rows = store.audit_log()
    assert [(r["actor"], r["action"], r["subject"]) for r in rows[:2]] == [
        ("console alice from 10.0.0.5", "assigned", "erin"), ("console alice from 10.0.0.5", "face enrolled", "dana")]
    assert rows[0]["detail"] == {"sighting": newest.id, "was": "dana"}
    db.close()
