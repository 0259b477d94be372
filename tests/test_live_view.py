"""The live view as an operator and a monitoring system meet it: browser page, MJPEG, JSON, /metrics."""

from __future__ import annotations

import json
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from streamer.web.server import LiveView, StreamStatus, WebConfig
from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def get(url: str, headers: dict | None = None, timeout: float = 10):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


def _status(name: str, frames: int) -> StreamStatus:
    now = time.time()
    return StreamStatus(
        name=name, live=True, state="decoding", connected=True, decoded=frames, frames_out=frames, dropped=0,
        reconnects=0, stalls=0, decode_errors=0, skipped_damaged=0, connect_failures=0, fps_in=10.0, fps_out=9.5,
        latency_ms=80.0, last_error=None, width=64, height=48, last_frame_time=now, last_frame_age_s=0.0, updated=now,
    )


def test_token_is_required_off_localhost_and_checked():
    view = LiveView(WebConfig(enabled=True, port=0, token="tok-123"), lambda: [_status("cam", 0)]).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            get(view.url + "metrics")
        assert refused.value.code == 401
        import base64

        assert get(view.url + "metrics?token=tok-123")[0] == 200
        assert get(view.url + "metrics", {"Authorization": "Bearer tok-123"})[0] == 200
        basic = base64.b64encode(b"anyone:tok-123").decode()
        assert get(view.url + "api/streams", {"Authorization": f"Basic {basic}"})[0] == 200
        with pytest.raises(urllib.error.HTTPError):
            get(view.url + "metrics?token=tok-12")
    finally:
        view.close()


def test_mjpeg_and_metrics_from_published_frames():
    view = LiveView(WebConfig(enabled=True, port=0), lambda: [_status("cam", 7)]).start()
    try:
        view.publish("cam", np.full((48, 64, 3), 200, np.uint8))
        status, jpeg = get(view.url + "streams/cam.jpg")
        assert status == 200 and jpeg[:2] == b"\xff\xd8"
        _, page = get(view.url + "metrics")
        assert 'streamer_frames_processed_total{stream="cam"} 7' in page.decode()
        assert "# TYPE streamer_reconnects_total counter" in page.decode()
        with urllib.request.urlopen(view.url + "streams/cam.mjpg", timeout=10) as response:
            assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            first = response.read(300)
            assert b"--frame" in first and b"image/jpeg" in first
    finally:
        view.close()


@pytest.fixture()
def running_live_view(rtsp_server, tmp_path):
    """`streamer run` on a real RTSP camera (password protected) with the live view on."""
    password = "LiveV1ew!pw"
    server = rtsp_server(user="op", password=password)
    config = tmp_path / "c.yaml"
    config.write_text(
        "sources:\n  - name: door\n    uri: rtsp://op:${DOOR_PW}@127.0.0.1:" + str(server.port) + "/cam\n"
        f"web: {{enabled: true, port: 0}}\noutput:\n  dir: {tmp_path / 'out'}\n"
    )
    import os

    proc = subprocess.Popen([sys.executable, "-m", "streamer", "run", str(config)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "DOOR_PW": password})
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    url, deadline, seen = None, time.monotonic() + 60, []
    while url is None and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        seen.append(line)
        match = re.search(r"live view: (http://\S+)", line)
        url = match.group(1) if match else None
    assert url, "".join(seen)
    yield proc, url, password, seen, lines
    proc.send_signal(signal.SIGINT)
    proc.wait(60)


def _wait_for_frames(url: str, minimum: int, seconds: float = 30) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        streams = json.loads(get(url + "api/streams")[1])
        if streams and streams[0]["frames_out"] >= minimum:
            return streams[0]
        time.sleep(0.3)
    raise AssertionError(f"fewer than {minimum} frames processed in {seconds} s: {streams}")


def test_live_view_of_a_real_camera_serves_status_metrics_and_no_password(running_live_view):
    proc, url, password, seen, lines = running_live_view
    status = _wait_for_frames(url, 10)
    assert status["state"] == "decoding" and status["live"] and status["fps_in"] > 5
    metrics_page = get(url + "metrics")[1].decode()
    assert re.search(r'streamer_frames_processed_total\{stream="door"\} \d+', metrics_page)
    assert 'streamer_source_up{stream="door"} 1' in metrics_page
    everything = metrics_page + get(url)[1].decode() + get(url + "api/streams")[1].decode()
    proc.send_signal(signal.SIGINT)
    proc.wait(60)  # stderr has its reader already: communicate() would take some of its lines from it
    stdout = proc.stdout.read()
    while not lines.empty():
        seen.append(lines.get())
    assert password not in everything + stdout + "".join(seen)
    assert proc.returncode == 130


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (make test installs Debian's chromium)")
def test_a_browser_sees_the_streams_and_the_video_moving(running_live_view, tmp_path):
    proc, url, *_ = running_live_view
    _wait_for_frames(url, 5)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--window-size=640,520", "--virtual-time-budget=4000"]

    def browse(*extra: str) -> subprocess.CompletedProcess:
        profile = tmp_path / f"profile-{time.monotonic_ns()}"
        return subprocess.run([CHROMIUM, *flags, f"--user-data-dir={profile}", *extra, url],
                              capture_output=True, text=True, timeout=90)

    dom = browse("--dump-dom").stdout
    assert 'id="s-door"' in dom and "decoding" in dom and "/streams/door.mjpg" in dom
    shots = []
    for i in range(2):
        path = tmp_path / f"shot{i}.png"
        browse(f"--screenshot={path}")
        import cv2

        shots.append(cv2.imread(str(path)))
        time.sleep(2)
    assert shots[0] is not None and shots[1] is not None
    video_area = (slice(60, 300), slice(20, 500))  # where the first stream's <img> sits
    difference = np.abs(shots[0][video_area].astype(int) - shots[1][video_area].astype(int)).mean()
    assert shots[0][video_area].std() > 5  # a picture, not an empty box
    assert difference > 1.0  # the frames changed between the two looks
