"""The store under hostile names, concurrent runs and killed runs: names are data (never paths,
never raw on a terminal), runs starting at once on one new store, retention of tracks a killed run
left open, and schema 1 stores upgraded in place."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from streamer.errors import StreamerError
from streamer.identify.names import check_person_name, slug
from streamer.store.database import SCHEMA, SCHEMA_VERSION, connect, transaction
from streamer.store.gallery import GalleryStore
from streamer.store.runs import RunRegistry
from streamer.store.sightings import SightingStore
from tests.conftest import ROOT, need_shared, run_cli

DAY_S = 86400.0
HOSTILE = ["../../x", "..", "a\nb", "x" * 5000, "\x1b[2J\x1b[31mred", "", "  padded ", "evil\u202etxt.exe",
           "nul\x00byte", "back\\slash"]


def _crop(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (112, 112, 3), np.uint8)


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=16)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    """A CLI failure as a user sees it: exit 2, one line on stderr, no raw control characters."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "\x1b" not in result.stderr and "\x00" not in result.stderr
    return result.stderr


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE + ["/abs/path", "unknown-00042", "tab\there", "line\u2028sep", "."])
def test_a_name_that_is_a_path_or_not_printable_is_refused_in_one_escaped_line(name):
    with pytest.raises(StreamerError) as refused:
        check_person_name(name, "gallery enroll")
    message = str(refused.value)
    assert message.startswith("gallery enroll: person name ")
    assert "\n" not in message and "\x1b" not in message and "\x00" not in message and "\u202e" not in message
    assert len(message) < 300  # a 5,000-character name is shown cut short


@pytest.mark.parametrize("name", ["alice", "José María O'Brien", "李小龙", "Anne-Marie 2", "x" * 128, "unknown"])
def test_ordinary_names_are_kept_as_given(name):
    assert check_person_name(name, "gallery enroll") == name


def test_slug_is_a_safe_fragment_of_the_name():
    assert slug("../../x") == "x" and slug("/abs/path") == "abs_path" and slug("José") == "Jose"
    assert slug("x" * 5000) == "x" * 40 and slug("\x1b[2J") == "2J" and slug("..") == ""


def test_enroll_and_name_refuse_bad_names_before_touching_the_store(tmp_path):
    db = tmp_path / "g.db"
    for name in ("../../x", "\x1b[31mred\x1b[0m", "x" * 5000):
        stderr = _one_line_error(run_cli("gallery", "enroll", name, str(tmp_path), "--db", str(db)))
        assert "gallery enroll: person name" in stderr
    assert not db.exists()  # refused before the store was created
    store = GalleryStore(connect(db))
    store.add_face(store.create("alice"), _crop(), "alice.jpg", "m", _unit(1))
    stderr = _one_line_error(run_cli("gallery", "name", "alice", "a/b", "--db", str(db)))
    assert "gallery name: person name 'a/b'" in stderr
    kept = run_cli("gallery", "name", "alice", "alice", "--db", str(db))  # once, this erased alice
    assert kept.returncode == 0 and kept.stdout.strip() == "alice: already named alice"
    assert [r.name for r in store.list()] == ["alice"] and store.list()[0].crops == 1


def test_gallery_dir_names_are_checked_and_the_file_is_named(tmp_path):
    from streamer.identify.gallery import photos_by_name

    folder = tmp_path / "gallery"
    (folder / "bob").mkdir(parents=True)
    (folder / "bob" / "1.jpg").write_bytes(b"")
    (folder / "alice.jpg").write_bytes(b"")
    assert set(photos_by_name(folder)) == {"alice", "bob"}
    bad = folder / "eve\x1b[2J.jpg"
    bad.write_bytes(b"")
    with pytest.raises(StreamerError) as refused:
        photos_by_name(folder)
    message = str(refused.value)
    assert message.startswith(f"gallery.dir: {folder}/eve\\x1b[2J.jpg: person name 'eve\\x1b[2J'")
    assert "\x1b" not in message
    bad.unlink()
    (folder / "unknown-00001").mkdir()
    with pytest.raises(StreamerError, match="gallery.dir: .*unknown-00001.*pseudo-identities"):
        photos_by_name(folder)


def test_a_run_refuses_a_gallery_dir_holding_a_bad_name(tmp_path):
    faces = need_shared("data", "faces", "identities", "knn_examples", "train")
    folder = tmp_path / "gallery"
    folder.mkdir()
    (folder / "obama\nroot.jpg").symlink_to(faces / "obama" / "obama.jpg")
    config = tmp_path / "run.yaml"
    config.write_text(f"gallery: {{dir: {folder}}}\nstore: {{path: {tmp_path / 's.db'}}}\n"
                      f"sources: [{{name: x, uri: {faces / 'obama' / 'obama2.jpg'}}}]\n")
    stderr = _one_line_error(run_cli("run", str(config), "--out", str(tmp_path / "out"), "-q"))
    assert "gallery.dir: " in stderr and "obama\\nroot.jpg" in stderr


# --- export --------------------------------------------------------------------------------------


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_export_never_uses_a_name_as_a_path_and_completes(tmp_path):
    """Names an old store may hold (written before names were checked) go into gallery.json as data."""
    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    db = work / "old.db"
    store = GalleryStore(connect(db))
    names = HOSTILE + [str(tmp_path / "abs" / "path"), "José"]
    with transaction(store.conn):
        for name in names:  # straight into the table, as an old store might hold them
            store.conn.execute("INSERT INTO identities (name, kind, created) VALUES (?, 'person', 0)", (name,))
    for row in store.list():
        store.add_face(row.id, _crop(row.id), f"photo {row.id}", "m", _unit(row.id))
    store.conn.close()
    before = _files(tmp_path)
    out = work / "export"
    result = run_cli("gallery", "export", "--out", str(out), "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"exported {len(names)} identities ({len(names)} faces) to {out}: "
                                          "gallery.json and one folder per identity"]
    written = {p for p in _files(tmp_path) - before if not p.name.startswith("old.db")}  # the store's WAL
    assert all(out in p.parents or p == out for p in written), sorted(map(str, written))[:5]
    assert not (tmp_path / "abs").exists() and not (tmp_path / "x").exists()
    manifest = json.loads((out / "gallery.json").read_text())
    assert sorted(item["name"] for item in manifest) == sorted(names)
    for item in manifest:
        folder = out / item["folder"]
        assert folder.parent == out and item["folder"].split("-")[0] == str(item["id"])
        assert [f["file"] for f in item["faces"]] and all((folder / f["file"]).is_file() for f in item["faces"])
        assert list(item["faces"][0]["embeddings"]) == ["m"]
    assert {p.name for p in out.iterdir() if p.is_file()} == {"gallery.json"}  # the temp file is gone
    listed = run_cli("gallery", "list", "--db", str(db))
    assert listed.returncode == 0 and "\x1b" not in listed.stdout and "\x00" not in listed.stdout
    assert len(listed.stdout.splitlines()) == 1 + len(names)  # one line per identity, whatever its name


def test_export_refuses_a_folder_that_is_not_empty(tmp_path):
    db = tmp_path / "g.db"
    store = GalleryStore(connect(db))
    store.add_face(store.create("alice"), _crop(), "alice.jpg", "m", _unit(1))
    out = tmp_path / "out"
    out.mkdir()
    (out / "gallery.json").write_text("an earlier export")
    stderr = _one_line_error(run_cli("gallery", "export", "--out", str(out), "--db", str(db)))
    assert "is not empty" in stderr and str(out) in stderr
    assert (out / "gallery.json").read_text() == "an earlier export" and len(list(out.iterdir())) == 1
    one = run_cli("gallery", "export", "alice", "--out", str(tmp_path / "new" / "alice"), "--db", str(db))
    assert one.returncode == 0 and len(one.stdout.splitlines()) == 1
    assert [p.name for p in (tmp_path / "new" / "alice").iterdir() if p.is_dir()] == ["1-alice"]
    _one_line_error(run_cli("gallery", "export", "nobody", "--out", str(tmp_path / "n"), "--db", str(db)))


# --- runs starting at once -----------------------------------------------------------------------

CONNECT = """
import sys, time
sys.path.insert(0, {root!r})
from streamer.store.database import connect
start = float(sys.argv[1])
time.sleep(max(0.0, start - time.time()))  # every process opens the new file at the same moment
connect({db!r}).close()
"""

ENROLL = """
import sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from engines import Device
from streamer.detect.haar import HaarConfig, HaarDetector
from streamer.embed.lbp_histogram import LbpHistogramConfig, LbpHistogramEmbedder
from streamer.identify.gallery import enroll, photos_by_name
from streamer.store.database import connect
from streamer.store.gallery import GalleryStore
detector = HaarDetector(HaarConfig(), Device("cpu"))
embedder = LbpHistogramEmbedder(LbpHistogramConfig(), Device("cpu"))
start = float(sys.argv[1])
time.sleep(max(0.0, start - time.time()))
store = GalleryStore(connect({db!r}))
print(sum(enroll(store, name, photos, detector, embedder, 112)[0]
          for name, photos in photos_by_name(Path({folder!r})).items()))
"""


def _all_at_once(script: str, processes: int, lead_s: float) -> list[subprocess.CompletedProcess]:
    """Runs ``processes`` copies of ``script``, each told to start its work ``lead_s`` from now."""
    start = time.time() + lead_s
    children = [subprocess.Popen([sys.executable, "-c", script, str(start)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(processes)]
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(child.args, child.returncode, out, err))
    return results


def test_many_processes_opening_one_new_store_at_once_all_succeed(tmp_path):
    for attempt in range(3):  # a race: several rounds, each on a new file
        db = tmp_path / f"new{attempt}.db"
        results = _all_at_once(CONNECT.format(root=str(ROOT), db=str(db)), processes=8, lead_s=2.0)
        assert [r.returncode for r in results] == [0] * 8, [r.stderr.strip()[-300:] for r in results]
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        conn.close()


@pytest.mark.parametrize("store", ["new", "existing"])
def test_runs_enrolling_one_gallery_dir_into_one_store_at_once_add_each_person_and_photo_once(tmp_path, store):
    """What ``open_identification`` does at the start of each run; with a new file both races meet
    (schema creation, then enrolment), with an existing store only the enrolment one."""
    faces = need_shared("data", "faces", "identities", "knn_examples", "train")
    folder = tmp_path / "gallery"
    for person in ("obama", "biden"):
        (folder / person).mkdir(parents=True)
        for photo in (faces / person).iterdir():
            (folder / person / photo.name).symlink_to(photo)  # linked, never copied
    db = tmp_path / "shared.db"
    if store == "existing":
        connect(db).close()
    processes = 3
    results = _all_at_once(ENROLL.format(root=str(ROOT), db=str(db), folder=str(folder)), processes, lead_s=4.0)
    assert [r.returncode for r in results] == [0] * processes, [r.stderr.strip()[-300:] for r in results]
    assert sum(int(r.stdout) for r in results) == 4  # every photo enrolled by exactly one of them
    gallery = GalleryStore(connect(db))
    rows = {r.name: r for r in gallery.list()}
    assert sorted(rows) == ["biden", "obama"] and [rows[n].crops for n in sorted(rows)] == [2, 2]
    sources = [r[0] for r in gallery.conn.execute("SELECT source FROM crops")]
    assert len(sources) == len(set(sources)) == 4


def test_enroll_face_adds_a_photo_once_and_refuses_pseudo_identities(tmp_path):
    store = GalleryStore(connect(tmp_path / "g.db"))
    identity, crop = store.enroll_face("ann", _crop(), "a.jpg", "m", _unit(1))
    assert crop is not None and store.enroll_face("ann", _crop(), "a.jpg", "m", _unit(2)) == (identity, None)
    assert store.identity_id("ann") == identity and store.identity_id("ben") is None
    _, pseudo, _ = store.create_pseudo(_unit(3), _crop(3), "m", "track 1")
    with pytest.raises(StreamerError, match="pseudo-identity"):
        store.enroll_face(pseudo, _crop(), "b.jpg", "m", _unit(4))


# --- killed runs and retention -------------------------------------------------------------------

VICTIM = """
import sys, time
sys.path.insert(0, {root!r})
from streamer.store.database import connect, transaction
from streamer.store.runs import RunRegistry
conn = connect({db!r})
runs = RunRegistry(conn, interval_s=0.1)
runs.start("victim")
n = 0
while True:  # what a run's event writer does: tracks start, get sightings, some end
    n += 1
    with transaction(conn):
        now = time.time()
        track = conn.execute("INSERT INTO tracks (run, stream, track_id, started) VALUES ('victim', 'cam', ?, ?)",
                             (n, now)).lastrowid
        for k in range(1 + n % 4):
            conn.execute("INSERT INTO sightings (time, type, stream, track, event) VALUES (?, 'identity', 'cam', ?, "
                         "'{{}}')", (now + k * 0.001, track))
        if n % 3 == 0:
            conn.execute("UPDATE tracks SET ended = ? WHERE id = ?", (now, track))
    runs.beat()
    print(track, flush=True)  # acknowledged: committed
"""


def _open_tracks(conn: sqlite3.Connection, run: str) -> dict[int, float]:
    """Open track id -> the time of its latest sighting (or its start)."""
    return dict(conn.execute(
        "SELECT t.id, COALESCE(MAX(s.time), t.started) FROM tracks t LEFT JOIN sightings s ON s.track = t.id "
        "WHERE t.run = ? AND t.ended IS NULL GROUP BY t.id", (run,)))


def _live_run_with_old_tracks(db: Path) -> tuple[RunRegistry, int]:
    """A run that is alive (fresh heartbeat) with an open track last seen 40 days ago."""
    conn = connect(db)
    live = RunRegistry(conn, interval_s=0)  # the test beats it by hand
    live.start("alive")
    old = time.time() - 40 * DAY_S
    with transaction(conn):
        track = conn.execute("INSERT INTO tracks (run, stream, track_id, started) VALUES ('alive', 'cam', 1, ?)",
                             (old,)).lastrowid
        conn.execute("INSERT INTO sightings (time, type, stream, track, event) VALUES (?, 'track_start', 'cam', ?, "
                     "'{}')", (old, track))
    return live, track


def test_tracks_of_a_run_killed_mid_write_are_ended_and_then_expire_but_a_live_runs_stay(tmp_path):
    db = tmp_path / "store.db"
    live, live_track = _live_run_with_old_tracks(db)
    script = tmp_path / "victim.py"
    script.write_text(VICTIM.format(root=str(ROOT), db=str(db)))
    victim = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    time.sleep(1.5)  # it writes all the time: most likely killed inside a transaction
    os.kill(victim.pid, signal.SIGKILL)
    acknowledged = len(victim.communicate()[0].splitlines())
    assert acknowledged > 20  # it really was writing
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    left_open = _open_tracks(conn, "victim")
    assert len(left_open) > 10
    time.sleep(1.2)  # its heartbeat (every 0.1 s while it lived) is now over 1 s old

    live.beat()
    registry = RunRegistry(connect(db))
    assert registry.close_dead(stale_after_s=1.0) == len(left_open)
    assert _open_tracks(conn, "victim") == {}
    ended = {t: conn.execute("SELECT ended FROM tracks WHERE id = ?", (t,)).fetchone()[0] for t in left_open}
    assert ended == left_open  # each ended at its latest sighting, not at the clean-up's time
    assert conn.execute("SELECT outcome, ended = heartbeat FROM runs WHERE id = 'victim'").fetchone() == ("killed", 1)
    assert _open_tracks(conn, "alive") != {}  # the live run's tracks, however old, are left alone
    assert registry.close_dead(stale_after_s=1.0) == 0

    sightings = SightingStore(registry.conn)
    assert sightings.prune(30)["tracks"] == 0  # nothing is 30 days old but the live run's track: kept
    pruned = sightings.prune(30, now=time.time() + 31 * DAY_S)
    assert pruned["tracks"] >= acknowledged  # all of the killed run's, ended by it or by close_dead
    assert conn.execute("SELECT count(*) FROM tracks WHERE run = 'victim'").fetchone()[0] == 0
    assert [r[0] for r in conn.execute("SELECT id FROM runs")] == ["alive"]  # the killed run's row expired too
    assert [r[0] for r in conn.execute("SELECT id FROM tracks")] == [live_track]
    live.finish("completed")
    assert _open_tracks(conn, "alive") == {}


def test_retention_deletes_open_tracks_of_a_dead_run_even_before_anyone_closed_them(tmp_path):
    db = tmp_path / "store.db"
    conn = connect(db)
    old = time.time() - 40 * DAY_S
    dead = RunRegistry(conn)
    dead.start("dead")
    with transaction(conn):
        conn.execute("UPDATE runs SET heartbeat = ? WHERE id = 'dead'", (old,))
        for run in ("dead", "unregistered"):
            conn.execute("INSERT INTO tracks (run, stream, track_id, started) VALUES (?, 'cam', 1, ?)", (run, old))
    pruned = SightingStore(conn).prune(30)
    assert pruned["tracks"] == 2 and pruned["runs"] == 0  # the run row stays until it is ended and expired
    assert conn.execute("SELECT count(*) FROM tracks").fetchone()[0] == 0


def test_a_schema_1_store_is_upgraded_in_place_and_a_newer_one_refused(tmp_path):
    db = tmp_path / "v1.db"
    raw = sqlite3.connect(db)
    raw.executescript(SCHEMA + "PRAGMA user_version=1;")
    recent, old = time.time() - 120, time.time() - 40 * DAY_S
    raw.executescript(f"""
        INSERT INTO identities (id, name, kind, created) VALUES (1, 'alice', 'person', 0);
        INSERT INTO tracks (id, run, stream, track_id, started) VALUES (1, 'old-run', 'cam', 1, {old});
        INSERT INTO tracks (id, run, stream, track_id, started) VALUES (2, 'old-run', 'cam', 2, {old});
        INSERT INTO sightings (time, type, stream, track, event) VALUES ({recent}, 'identity', 'cam', 2, '{{}}');
        INSERT INTO tracks (id, run, stream, track_id, started) VALUES (3, 'other', 'cam', 3, {time.time()});
    """)
    raw.close()
    conn = connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM gallery_changes").fetchone()[0] == 0  # schema 3's change log
    assert [r.name for r in GalleryStore(conn).list()] == ["alice"]
    # Tracks written by schema 1 runs: ended at their latest sighting once it is older than the staleness.
    assert RunRegistry(conn).close_dead(stale_after_s=60) == 2
    assert dict(conn.execute("SELECT id, ended FROM tracks")) == {1: old, 2: recent, 3: None}
    conn.close()
    raw = sqlite3.connect(db)
    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StreamerError, match="newer streamer"):
        connect(db)


def test_heartbeat_is_written_at_most_every_interval(tmp_path):
    conn = connect(tmp_path / "s.db")
    runs = RunRegistry(conn, interval_s=10)
    runs.beat()  # before start: nothing to say
    runs.start("r")
    first = conn.execute("SELECT heartbeat FROM runs").fetchone()[0]
    runs.beat(first + 5)
    assert conn.execute("SELECT heartbeat FROM runs").fetchone()[0] == first
    runs.beat(first + 11)
    assert conn.execute("SELECT heartbeat FROM runs").fetchone()[0] == first + 11
    with transaction(conn):  # stalled long enough for another run to take it for dead
        conn.execute("UPDATE runs SET ended = heartbeat, outcome = 'killed'")
    runs.beat(first + 22)
    assert conn.execute("SELECT heartbeat, ended, outcome FROM runs").fetchone() == (first + 22, None, None)
    runs.finish("stopped")
    assert conn.execute("SELECT outcome, ended IS NOT NULL FROM runs").fetchone() == ("stopped", 1)
