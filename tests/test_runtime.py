"""The runtime as operators meet it, through the CLI against real processes: run folders, a clean stop on
SIGTERM, dead cameras that read dead, frames lost in a file said out loud, a full disk, doctor."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import count_frames, run_cli, write_clip
from tests.processes import StreamerProcess, get_json, get_text


def _config(tmp_path: Path, body: str = "") -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(f"output:\n  dir: {tmp_path / 'out'}\n{body}")
    return path


def _runs(out: Path) -> list[Path]:
    return sorted((out / "runs").iterdir())


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def test_a_second_run_into_the_same_output_neither_overwrites_nor_mixes(tmp_path):
    clip = write_clip(tmp_path / "lobby.mp4", frames=12)
    config = _config(tmp_path)
    assert run_cli("run", str(config), "--source", str(clip), "-q").returncode == 0
    [first] = _runs(tmp_path / "out")
    before = {p.name: _digest(p) for p in first.iterdir()}
    second = run_cli("run", str(config), "--source", str(clip), "-q")
    assert second.returncode == 0, second.stderr
    runs = _runs(tmp_path / "out")
    assert len(runs) == 2 and runs[0] == first
    assert {p.name: _digest(p) for p in first.iterdir()} == before  # the first run's files are untouched
    assert (tmp_path / "out" / "latest").resolve() == runs[1]
    assert f"run:    {runs[1]}" in second.stdout
    for run in runs:
        assert count_frames(run / "lobby.mp4") == 12
        manifest = json.loads((run / "run.json").read_text())
        assert manifest["outcome"] == "completed" and manifest["frames"] == {"lobby": 12}
        assert manifest["run"] == run.name


def test_two_runs_started_at_once_share_a_fresh_store_and_keep_their_own_folders(tmp_path):
    from streamer.demo import build_demo

    build_demo(tmp_path / "input", frames=6, size=(960, 540), faces=3)
    config = _config(tmp_path, f"store: {{path: {tmp_path / 'shared.db'}}}\n"
                               f"gallery: {{dir: {tmp_path / 'input' / 'gallery'}}}\n")
    clip = tmp_path / "input" / "demo.mp4"
    runs = [StreamerProcess(config, "--source", str(clip), "-q") for _ in range(2)]
    codes = [run.finish(timeout=300) for run in runs]
    assert codes == [0, 0], [run.stderr for run in runs]
    assert len(_runs(tmp_path / "out")) == 2
    with sqlite3.connect(tmp_path / "shared.db") as db:
        people = db.execute("SELECT name, count(*) FROM identities WHERE kind = 'person' GROUP BY name").fetchall()
        sources = db.execute("SELECT count(*), count(DISTINCT identity_id || source) FROM crops").fetchone()
    assert len(people) == 4 and all(n == 1 for _, n in people)
    assert sources[0] == sources[1]  # no photo enrolled twice


def test_sigterm_gives_a_clean_stop(tmp_path):
    from streamer.demo import build_demo

    build_demo(tmp_path / "input", frames=150, size=(960, 540), faces=3)
    clip = tmp_path / "input" / "demo.mp4"
    config = _config(tmp_path, "web: {enabled: true, port: 0}\n"
                               f"sources:\n  - {{name: hall, uri: '{clip}', realtime: true}}\n")
    run = StreamerProcess(config)
    url = run.live_view_url()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and get_json(url + "api/streams")[0]["frames_out"] < 20:
        time.sleep(0.2)
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish(timeout=60) == 0, run.stderr
    assert "stopped by SIGTERM, outputs closed" in run.stdout and "Traceback" not in run.stderr
    [folder] = _runs(tmp_path / "out")
    events = _events(folder)
    started = {e["track_id"] for e in events if e["type"] == "track_start"}
    ended = {e["track_id"] for e in events if e["type"] == "track_end"}
    assert started and started == ended  # every track the run opened, it ended
    frames = int(run.stdout.split("hall.mp4 (", 1)[1].split(" frames")[0])
    assert 20 <= frames < 150 and count_frames(folder / "hall.mp4") == frames  # every processed frame is in it
    manifest = json.loads((folder / "run.json").read_text())
    assert manifest["outcome"] == "stopped" and manifest["stopped_by"] == "SIGTERM"


def _idle_connections(port: int, count: int) -> list[socket.socket]:
    connections = []
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        connection.sendall(b"GET /api/str")  # half a request line, then nothing
        connections.append(connection)
    return connections


def test_a_camera_down_from_the_start_is_listed_and_the_web_server_stays_bounded(tmp_path):
    config = _config(tmp_path, "web: {enabled: true, port: 0, max_connections: 16, max_viewers: 8, "
                               "request_timeout_s: 1}\n"
                               "sources:\n  - {name: gate, uri: 'rtsp://127.0.0.1:9/cam', open_timeout_s: 1, "
                               "backoff_initial_s: 0.2, backoff_max_s: 0.5}\n")
    run = StreamerProcess(config, "-q")
    try:
        url = run.live_view_url()
        time.sleep(2.0)
        [gate] = get_json(url + "api/streams")
        assert gate["name"] == "gate" and gate["state"] == "down" and gate["connect_failures"] >= 1
        assert gate["last_frame_time"] is None and time.time() - gate["updated"] < 2
        metrics = get_text(url + "metrics")
        assert 'streamer_source_up{stream="gate"} 0' in metrics
        failures = int(metrics.split('streamer_connect_failures_total{stream="gate"} ')[1].split()[0])
        assert failures >= 1
        baseline = run.threads()
        port = int(url.rsplit(":", 1)[1].strip("/"))
        idle = _idle_connections(port, 300)
        viewers = []
        for _ in range(20):
            try:
                viewers.append(socket.create_connection(("127.0.0.1", port), timeout=5))
                viewers[-1].sendall(b"GET /streams/gate.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
            except OSError:
                pass  # refused at the door: that is a bound too
        time.sleep(0.5)
        assert run.threads() <= baseline + 16 + 4  # at most max_connections handler threads
        for connection in idle + viewers:
            connection.close()
        deadline = time.monotonic() + 5
        while run.threads() > baseline + 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert run.threads() <= baseline + 2  # every handler thread gave back
        assert get_json(url + "api/streams")[0]["state"] == "down"  # still answering
        run.proc.send_signal(signal.SIGTERM)
        assert run.finish(timeout=60) == 0, run.stderr
    finally:
        run.kill()


def test_a_camera_killed_mid_run_reads_down_within_its_stall_timeout(rtsp_server, tmp_path):
    server = rtsp_server()
    config = _config(tmp_path, "web: {enabled: true, port: 0}\n"
                               f"sources:\n  - {{name: door, uri: '{server.url()}', stall_timeout_s: 2, "
                               "backoff_initial_s: 0.2, backoff_max_s: 1}\n")
    run = StreamerProcess(config, "-q")
    try:
        url = run.live_view_url()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and get_json(url + "api/streams")[0]["frames_out"] < 5:
            time.sleep(0.2)
        server.kill()
        killed = time.monotonic()
        while get_json(url + "api/streams")[0]["state"] == "decoding" and time.monotonic() - killed < 10:
            time.sleep(0.1)
        assert time.monotonic() - killed <= 2 + 1
        time.sleep(2.0)
        [door] = get_json(url + "api/streams")
        assert door["state"] == "down" and door["connect_failures"] >= 1 and door["last_frame_age_s"] >= 2
        assert 'streamer_source_up{stream="door"} 0' in get_text(url + "metrics")
        run.proc.send_signal(signal.SIGTERM)
        assert run.finish(timeout=60) == 0, run.stderr
    finally:
        run.kill()


def _faststart_clip(path: Path, frames: int) -> Path:
    """An MP4 with its index first (as cameras and web tools write them): its frame count is known up front."""
    import av

    source = write_clip(path.with_suffix(".raw.mp4"), frames=frames)
    with av.open(str(source)) as given, av.open(str(path), "w", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream_from_template(given.streams.video[0])
        for packet in given.demux(given.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)
    return path


def test_a_file_cut_short_is_said_loudly(tmp_path):
    whole = _faststart_clip(tmp_path / "whole.mp4", frames=120)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    result = run_cli("run", str(_config(tmp_path)), "--source", str(cut), "-q")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith(("warning: ", "error: "))]
    assert any("cut.mp4" in line and ("of 120 frames" in line or "failed after" in line) for line in problems), \
        result.stderr
    manifest = json.loads((_runs(tmp_path / "out")[0] / "run.json").read_text())
    assert manifest["outcome"] == "incomplete" and (manifest["warnings"] or manifest["errors"])


def test_damage_in_the_middle_of_a_file_is_said_loudly(tmp_path):
    clip = write_clip(tmp_path / "cam.ts", frames=200, bframes=0)
    data = bytearray(clip.read_bytes())
    middle = len(data) // 2
    data[middle: middle + 188 * 40] = bytes(188 * 40)  # 40 MPEG-TS packets lost in the middle
    damaged = tmp_path / "damaged.ts"
    damaged.write_bytes(bytes(data))
    result = run_cli("run", str(_config(tmp_path)), "--source", str(damaged), "-q")
    assert result.returncode == 1, result.stderr
    assert any(line.startswith("warning: source 'damaged'") and ("skipped after damage" in line
               or "damaged packets" in line) for line in result.stderr.splitlines()), result.stderr


@pytest.fixture()
def small_disk(tmp_path):
    """A 1 MiB file system (tmpfs), as a disk that fills up mid-run; needs root to mount."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_run_with_one_line_and_playable_video(tmp_path, small_disk):
    import av
    import numpy as np

    clip = tmp_path / "noise.mp4"
    with av.open(str(clip), "w") as container:  # noise does not compress: the recording fills the disk fast
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"crf": "0"}
        rng = np.random.default_rng(0)
        for _ in range(150):
            image = rng.integers(0, 255, (240, 320, 3), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    config = tmp_path / "c.yaml"
    config.write_text(f"output: {{dir: {small_disk}, crf: 0}}\nstore: {{path: {tmp_path / 'streamer.db'}}}\n")
    result = run_cli("run", str(config), "--source", str(clip), "-q")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert "No space left on device" in errors[0] and str(small_disk) in errors[0], errors[0]
    assert "Traceback" not in result.stderr
    [run] = _runs(small_disk)
    assert count_frames(run / "noise.mp4") > 0  # what was written before the disk filled plays


BAD_CONFIGS = {
    "alias bomb": ('a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
                   'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n'
                   'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n', "YAML aliases"),
    "negative threshold": ("gallery: {threshold: -0.2}\n", "gallery.threshold"),
    "threshold out of range": ("gallery: {occluder_thresholds: {face_mask: 5}}\n", "gallery.occluder_thresholds"),
    "misspelled occluder": ("gallery: {occluder_thresholds: {sunglases: 0.3}}\n", "sunglases"),
    "reconstruction for a class nobody finds": ("gallery: {reconstruction_for: [face_mask, mouth]}\n",
                                                "gallery.reconstruction_for: 'mouth'"),
    "a student that is not there": ("embedder: {backend: dlib, student: s.onnx}\n",
                                    "embedder.student: file not found: s.onnx"),
    "a student for LBP": ("embedder: {backend: lbp_histogram, student: s.onnx}\n", "embedder.student: unknown key"),
    "backoff order": ("sources: [{name: a, uri: rtsp://h/x, backoff_initial_s: 40, backoff_max_s: 5}]\n",
                      "backoff_initial_s"),
    "pseudo after window": ("identity: {window: 4, pseudo_min_frames: 5}\n", "pseudo_min_frames"),
    "protocol override": ("sources: [{name: a, uri: rtsp://h/x, options: {protocol_whitelist: 'file,rtsp'}}]\n",
                          "protocol_whitelist"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_settings_are_refused_in_one_line(tmp_path, case):
    text, culprit = BAD_CONFIGS[case]
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    result = run_cli("config", "show", str(config), timeout=60)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert culprit in errors[0] and "bad.yaml" in errors[0], errors[0]


def test_a_binary_file_given_as_config_is_refused_in_one_line(tmp_path):
    config = tmp_path / "model.onnx"
    config.write_bytes(bytes(range(256)) * 8)
    result = run_cli("run", str(config), "--source", "x.mp4")
    assert result.returncode == 2 and result.stderr.count("error: ") == 1, result.stderr
    assert "model.onnx" in result.stderr and "not a text file" in result.stderr


@pytest.mark.parametrize("content", [b"\x08\x07garbage" * 100, None], ids=["garbage", "a face detector"])
def test_a_wrong_occluder_model_is_refused_in_one_line(tmp_path, content):
    from tests.conftest import MODELS

    model = tmp_path / "occluders.onnx"
    if content is None:
        scrfd = MODELS / "scrfd_500m_bnkps.onnx"
        if not scrfd.exists():
            pytest.skip(f"needs {scrfd}")
        model.write_bytes(scrfd.read_bytes())
    else:
        model.write_bytes(content)
    clip = write_clip(tmp_path / "lobby.mp4", frames=3)
    result = run_cli("run", str(_config(tmp_path, f"occlusion: {{backend: yolo_seg, model: {model}}}\n")),
                     "--source", str(clip), "-q")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "occluders.onnx" in errors[0]


def test_doctor_leaves_the_production_store_alone(tmp_path):
    from streamer.demo import build_demo
    from streamer.store.database import connect

    build_demo(tmp_path / "input", frames=1, size=(960, 540), faces=3)
    store = tmp_path / "prod.db"
    conn = connect(store)
    with conn.transaction():
        conn.execute("INSERT INTO identities (name, kind, created, last_seen) VALUES ('unknown-00001', 'pseudo', 0, 0)")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = _digest(store)
    config = _config(tmp_path, f"store: {{path: {store}, retention_days: 1}}\n"
                               f"gallery: {{dir: {tmp_path / 'input' / 'gallery'}}}\n")
    result = run_cli("doctor", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not opened by doctor" in result.stdout
    assert _digest(store) == before  # nothing enrolled, nothing pruned
    assert not Path(f"{store}-wal").exists() or os.path.getsize(f"{store}-wal") == 0
    missing = _config(tmp_path, f"store: {{path: {tmp_path / 'none.db'}}}\n")
    assert run_cli("doctor", "--config", str(missing)).returncode == 0
    assert not (tmp_path / "none.db").exists()


def test_tracks_of_a_killed_run_are_ended_by_the_next_run(tmp_path):
    from streamer.demo import build_demo

    build_demo(tmp_path / "input", frames=150, size=(960, 540), faces=3)
    clip = tmp_path / "input" / "demo.mp4"
    config = _config(tmp_path, f"sources:\n  - {{name: hall, uri: '{clip}', realtime: true}}\n")
    run = StreamerProcess(config, "-q")
    events = tmp_path / "out" / "latest" / "events.jsonl"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and (not events.exists() or "track_start" not in events.read_text()):
        time.sleep(0.2)
    run.kill()  # kill -9: nothing ends its tracks
    killed = (tmp_path / "out" / "latest").resolve().name
    with sqlite3.connect(tmp_path / "out" / "streamer.db") as db:
        assert db.execute("SELECT count(*) FROM tracks WHERE run = ? AND ended IS NULL", (killed,)).fetchone()[0]
    short = write_clip(tmp_path / "lobby.mp4", frames=3)
    assert run_cli("run", str(_config(tmp_path)), "--source", str(short), "-q").returncode == 0
    with sqlite3.connect(tmp_path / "out" / "streamer.db") as db:
        assert db.execute("SELECT count(*) FROM tracks WHERE ended IS NULL").fetchone()[0] == 0
        assert db.execute("SELECT outcome FROM runs WHERE id = ?", (killed,)).fetchone()[0] == "killed"
        last = db.execute("SELECT max(time) FROM sightings s JOIN tracks t ON t.id = s.track WHERE t.run = ?",
                          (killed,)).fetchone()[0]
        assert db.execute("SELECT max(ended) FROM tracks WHERE run = ?", (killed,)).fetchone()[0] <= last
