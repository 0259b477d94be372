"""The live view's server over real sockets, as an operator, a monitoring system and an attacker meet it:
statuses pulled fresh on every request, bounded threads, placeholders for streams without video, /metrics."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from urllib.parse import quote, urlsplit

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from streamer.records import StreamStatus
from streamer.web import metrics
from streamer.web.server import KEEPALIVE_S, LiveView, WebConfig

CHROMIUM = shutil.which("chromium")
LIVE = np.full((48, 64, 3), 200, np.uint8)  # the "camera" picture: uniform light grey


def status(name: str = "cam", state: str = "decoding", **changes) -> StreamStatus:
    now = time.time()
    base = StreamStatus(
        name=name, live=True, state=state, connected=state == "decoding", decoded=10, frames_out=9, dropped=1,
        reconnects=0, stalls=0, decode_errors=2, skipped_damaged=4, connect_failures=0, fps_in=10.0, fps_out=9.5,
        latency_ms=80.0, last_error=None, width=64, height=48, last_frame_time=now - 1, last_frame_age_s=1.0,
        updated=now,
    )
    return dataclasses.replace(base, **changes)


@contextlib.contextmanager
def serving(statuses: Callable[[], list[StreamStatus]], **config) -> Iterator[LiveView]:
    view = LiveView(WebConfig(enabled=True, port=0, **config), statuses).start()
    try:
        yield view
    finally:
        view.close()


def get(url: str, headers: dict | None = None, timeout: float = 5) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def connect(view: LiveView) -> socket.socket:
    parts = urlsplit(view.url)
    return socket.create_connection((parts.hostname, parts.port), timeout=5)


class Mjpeg:
    """One MJPEG viewer on a raw socket: the answer's status, then its parts one by one."""

    def __init__(self, view: LiveView, path: str, headers: str = ""):
        self.sock = connect(view)
        self.sock.sendall(f"GET {path} HTTP/1.0\r\n{headers}\r\n".encode())
        self.buffer = b""
        head = self._until(b"\r\n\r\n", 5)
        self.code = int(head.split(b" ", 2)[1])
        self.head = head

    def _until(self, marker: bytes, timeout: float) -> bytes:
        self.sock.settimeout(timeout)
        while marker not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before {marker!r}: {self.buffer[:200]!r}")
            self.buffer += chunk
        found, _, self.buffer = self.buffer.partition(marker)
        return found

    def body(self) -> bytes:
        """The rest of a plain (not MJPEG) answer: HTTP/1.0, so it ends when the server closes."""
        self.sock.settimeout(2)
        while chunk := self.sock.recv(65536):
            self.buffer += chunk
        return self.buffer

    def part(self, timeout: float = 5) -> np.ndarray:
        headers = self._until(b"\r\n\r\n", timeout)
        length = int(re.search(rb"Content-Length: (\d+)", headers).group(1))
        while len(self.buffer) < length + 2:
            chunk = self.sock.recv(65536)
            assert chunk, "closed inside a part"
            self.buffer += chunk
        data, self.buffer = self.buffer[:length], self.buffer[length + 2:]
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)

    def close(self) -> None:
        self.sock.close()


def code_of(view: LiveView, path: str, headers: str = "") -> int:
    viewer = Mjpeg(view, path, headers)
    viewer.close()
    return viewer.code


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def is_placeholder(image: np.ndarray) -> bool:
    """Not the live picture (its size and uniform grey), and not a black or uniform box."""
    return image is not None and image.shape[:2] != LIVE.shape[:2] and image.std() > 5 and image.max() > 150


# -- statuses are pulled, so a dead camera shows as dead at once ------------------------------------------

def test_every_request_shows_the_status_as_it_is_now_without_any_frame():
    current = [status(state="decoding", connect_failures=0)]
    with serving(lambda: list(current)) as view:
        api = json.loads(get(view.url + "api/streams")[2])
        assert api[0]["state"] == "decoding" and api[0]["connected"] is True
        current[0] = status(state="down", connect_failures=3, last_frame_age_s=41.0, last_error="connection refused")
        api = json.loads(get(view.url + "api/streams")[2])
        assert (api[0]["state"], api[0]["connect_failures"], api[0]["last_frame_age_s"]) == ("down", 3, 41.0)
        page = get(view.url + "metrics")[2].decode()
        assert 'streamer_source_up{stream="cam"} 0' in page
        assert 'streamer_source_state{stream="cam",state="down"} 1' in page
        assert 'streamer_connect_failures_total{stream="cam"} 3' in page
        current[0] = status(state="ended")
        page = get(view.url + "metrics")[2].decode()
        assert 'streamer_source_state{stream="cam",state="ended"} 1' in page
        assert 'streamer_source_state{stream="cam",state="down"} 0' in page


def test_a_stream_appears_when_listed_and_frames_may_come_before():
    current = [status("cam")]
    with serving(lambda: list(current)) as view:
        view.publish("late", LIVE)  # its frame holder is made on first use
        assert get(view.url + "streams/late.jpg")[0] == 404  # not listed: unknown
        assert get(view.url + "streams/late.mjpg")[0] == 404
        current.append(status("late"))
        code, headers, body = get(view.url + "streams/late.jpg")
        picture = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert code == 200 and picture.shape == LIVE.shape and abs(picture.mean() - 200) < 3


# -- bounded threads: idle connections and viewers that left ----------------------------------------------

def test_a_request_trickled_a_byte_at_a_time_is_cut_off_at_its_deadline():
    """The timeout is for the whole request, not each read: a slow-loris client cannot hold a thread."""
    with serving(lambda: [status()], max_connections=4, max_viewers=2, request_timeout_s=1) as view:
        sock = connect(view)
        started, closed_after = time.monotonic(), None
        try:
            for byte in b"GET /metrics HTTP/1.0\r\nX-Slow: " + b"a" * 40:
                sock.sendall(bytes([byte]))
                time.sleep(0.3)
                if time.monotonic() - started > 4:
                    break
        except OSError:  # the server shut the connection: a write fails
            closed_after = time.monotonic() - started
        if closed_after is None:
            sock.settimeout(1)
            with contextlib.suppress(OSError):
                assert sock.recv(100) == b""
            closed_after = time.monotonic() - started
        sock.close()
        assert closed_after < 1 + 1.5, closed_after
        assert get(view.url + "metrics")[0] == 200


def test_idle_half_sent_requests_hold_a_bounded_number_of_threads_and_time_out():
    with serving(lambda: [status()], max_connections=16, max_viewers=4, request_timeout_s=1) as view:
        baseline = threading.active_count()
        idle, peak = [], baseline
        try:
            for _ in range(300):
                sock = connect(view)
                sock.sendall(b"GET /metr")  # half a request line, then nothing
                idle.append(sock)
                peak = max(peak, threading.active_count())
            assert peak <= baseline + 16 + 3
            refused = idle[100]  # came while every thread was busy: answered at once, not after the timeout
            refused.settimeout(0.5)
            with contextlib.suppress(ConnectionResetError):
                answer = refused.recv(200)
                assert answer == b"" or answer.startswith(b"HTTP/1.0 503")
            assert wait_for(lambda: threading.active_count() <= baseline, 1 + 2)
        finally:
            for sock in idle:
                sock.close()
        # Connections still waiting in the kernel's accept queue are served (and time out) in turn; once the
        # idle clients are gone, a normal request is answered again.
        assert wait_for(lambda: get(view.url + "metrics")[0] == 200, 2 * (1 + 2))


def test_mjpeg_viewers_are_bounded_and_their_threads_end_when_they_leave():
    with serving(lambda: [status()]) as view:  # max_viewers 16
        view.publish("cam", LIVE)  # one frame, then none: the viewers wait
        baseline = threading.active_count()
        viewers = [Mjpeg(view, "/streams/cam.mjpg") for _ in range(20)]
        try:
            watching = [v for v in viewers if v.code == 200]
            refused = [v for v in viewers if v.code == 503]
            assert len(watching) == 16 and len(refused) == 4
            assert b"too many viewers" in refused[0].body()
            assert watching[0].part().shape == LIVE.shape
            assert threading.active_count() >= baseline + 16
        finally:
            for viewer in viewers:
                viewer.close()
        assert wait_for(lambda: threading.active_count() <= baseline, 3)
        assert Mjpeg(view, "/streams/cam.mjpg").code == 200  # the slots were given back


def test_a_waiting_viewer_gets_keepalives_and_sees_the_stream_go_down():
    current = [status()]
    with serving(lambda: list(current)) as view:
        view.publish("cam", LIVE)
        viewer = Mjpeg(view, "/streams/cam.mjpg")
        try:
            assert viewer.part().shape == LIVE.shape
            started = time.monotonic()
            again = viewer.part(timeout=KEEPALIVE_S + 1)  # no new frame: the last one again
            assert again.shape == LIVE.shape and time.monotonic() - started >= KEEPALIVE_S - 0.5
            current[0] = status(state="down")
            started = time.monotonic()
            assert is_placeholder(viewer.part(timeout=2)) and time.monotonic() - started < 1.5
        finally:
            viewer.close()


# -- placeholders instead of a black box ------------------------------------------------------------------

def test_a_down_stream_shows_a_placeholder_not_its_last_frame():
    current = [status(state="down", last_frame_time=time.time() - 41)]
    with serving(lambda: list(current)) as view:
        view.publish("cam", LIVE)
        pictures = {}
        for state, changes in [("down", {}), ("ended", {}), ("failed", {}),
                               ("connecting", {"last_frame_time": None, "last_frame_age_s": None})]:
            current[0] = status(state=state, **changes)
            code, headers, body = get(view.url + "streams/cam.jpg")
            assert code == 200 and headers["Content-Type"] == "image/jpeg" and headers["X-Stream-State"] == state
            pictures[state] = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
            assert is_placeholder(pictures[state]), state
        assert np.abs(pictures["down"].astype(int) - pictures["ended"]).mean() > 0.5  # the state is written
        current[0] = status(state="decoding")
        live = cv2.imdecode(np.frombuffer(get(view.url + "streams/cam.jpg")[2], np.uint8), cv2.IMREAD_COLOR)
        assert live.shape == LIVE.shape  # back to video


def test_a_stream_without_any_frame_yet_shows_a_placeholder():
    with serving(lambda: [status(state="decoding", last_frame_time=None, last_frame_age_s=None)]) as view:
        code, _, body = get(view.url + "streams/cam.jpg")
        assert code == 200 and is_placeholder(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR))


def test_a_hostile_stream_name_is_drawn_escaped_and_never_interpreted():
    name = 'we"ird\\cam\n<script>%s{0}'
    with serving(lambda: [status(name)]) as view:
        page = get(view.url + "metrics")[2].decode()
        assert 'streamer_frames_processed_total{stream="we\\"ird\\\\cam\\n<script>%s{0}"} 9' in page
        assert json.loads(get(view.url + "api/streams")[2])[0]["name"] == name
        code, _, body = get(view.url + "streams/" + quote(name, safe="") + ".jpg")
        assert code == 200 and body[:2] == b"\xff\xd8"


# -- /metrics ---------------------------------------------------------------------------------------------

def test_metrics_carry_frame_age_and_the_state_as_an_enum():
    streams = [status("a", state="decoding", last_frame_age_s=3.5), status("b", state="connecting",
                                                                           last_frame_time=None, last_frame_age_s=None)]
    page = metrics.render(streams)
    assert "# TYPE streamer_last_frame_age_seconds gauge" in page
    assert 'streamer_last_frame_age_seconds{stream="a"} 3.5' in page
    assert 'streamer_last_frame_age_seconds{stream="b"}' not in page  # no frame yet: no sample
    assert "# TYPE streamer_source_state gauge" in page
    states = re.findall(r'streamer_source_state\{stream="b",state="(\w+)"\} (\d)', page)
    assert dict(states) == {"connecting": "1", "decoding": "0", "down": "0", "ended": "0", "failed": "0"}
    assert 'streamer_source_up{stream="a"} 1' in page and 'streamer_source_up{stream="b"} 0' in page
    assert metrics.escape_label('a\\b"c\nd') == 'a\\\\b\\"c\\nd'


# -- the token guards everything --------------------------------------------------------------------------

def test_the_token_guards_every_path_including_the_video(caplog):
    caplog.set_level(logging.DEBUG, logger="streamer.web")
    paths = ["/", "/api/streams", "/metrics", "/streams/cam.jpg", "/streams/cam.mjpg", "/streams/nope.jpg", "/x"]
    with serving(lambda: [status()], token="s3cret-token") as view:
        view.publish("cam", LIVE)
        for path in paths:
            assert code_of(view, path) == 401, path
            assert code_of(view, path + "?token=s3cret-tokeN") == 401, path
            assert code_of(view, path, "Authorization: Bearer wrong\r\n") == 401, path
        expected = {"/streams/nope.jpg": 404, "/x": 404}
        for path in paths:
            assert code_of(view, path + "?token=s3cret-token") == expected.get(path, 200), path
        assert code_of(view, "/streams/cam.mjpg", "Authorization: Bearer s3cret-token\r\n") == 200
    assert caplog.records and all(r.levelno == logging.DEBUG for r in caplog.records)
    assert not any("s3cret" in r.getMessage() for r in caplog.records)


def test_the_new_limits_are_validated():
    config = WebConfig()
    assert (config.request_timeout_s, config.max_connections, config.max_viewers) == (10, 64, 16)
    with pytest.raises(ValidationError, match="max_viewers"):
        WebConfig(max_viewers=64, max_connections=64)
    for bad in [{"request_timeout_s": 0}, {"max_connections": 1}, {"max_viewers": 0}]:
        with pytest.raises(ValidationError):
            WebConfig(**bad)


# -- the page in a browser --------------------------------------------------------------------------------

@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (make test installs Debian's chromium)")
def test_the_page_shows_state_damage_and_when_it_was_updated(tmp_path):
    fresh = [status("door", state="down", connect_failures=3, skipped_damaged=4, last_frame_age_s=41.0,
                    last_error="<b>refused</b>")]
    stale = [status("gate", updated=time.time() - 30)]
    with serving(lambda: [dataclasses.replace(fresh[0], updated=time.time())]) as live, \
            serving(lambda: stale) as frozen:
        doms = browse([live.url, frozen.url], tmp_path)
    dom = doms[0]
    assert re.search(r"updated \d\d:\d\d:\d\d", dom) and warning(dom) == ""
    assert "skipped (damage)" in dom and "connect failures" in dom and "last frame 41 s ago" in dom
    assert 'class="stream state-down"' in dom and "down: reconnecting" in dom
    assert "&lt;b&gt;refused&lt;/b&gt;" in dom  # an error is text, not markup
    assert warning(doms[1]).startswith("not updating: the newest status is")


def warning(dom: str) -> str:
    return re.search(r'<div id="stale"[^>]*>([^<]*)</div>', dom).group(1)


def browse(urls: list[str], tmp_path) -> list[str]:
    """The DOM of each page after a few seconds in headless Chromium, the browsers run side by side."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--window-size=640,520", "--virtual-time-budget=3000", "--dump-dom"]
    runs = [subprocess.Popen([CHROMIUM, *flags, f"--user-data-dir={tmp_path / f'profile{i}'}", url],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            for i, url in enumerate(urls)]
    return [run.communicate(timeout=60)[0] for run in runs]
