"""The live view's HTTP server (stdlib, one thread per client).

Endpoints: ``/`` (index: every stream, its status and counters, its live video), ``/api/streams``
(JSON), ``/streams/NAME.mjpg`` (MJPEG of the annotated video), ``/streams/NAME.jpg`` (one frame),
``/metrics`` (Prometheus). Bound to localhost by default; on any other address a token is
required (``?token=``, ``Authorization: Bearer``, or basic auth with the token as password).
Nothing here ever holds a source URI, so no page can show a camera password.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np
from pydantic import Field, model_validator

from streamer.config_base import StrictModel
from streamer.redaction import register_secret
from streamer.web import metrics
from streamer.web.page import INDEX_HTML

log = logging.getLogger(__name__)


class WebConfig(StrictModel):
    enabled: bool = False
    host: str = Field("127.0.0.1", description="address to bind; anything but loopback needs a token")
    port: int = Field(8080, ge=0, le=65535, description="0 picks a free port")
    token: str | None = Field(None, description="required when host is not loopback; use ${ENV} for it")
    jpeg_quality: int = Field(80, ge=10, le=100)
    max_fps: float = Field(15.0, gt=0, le=60, description="MJPEG frames per second per viewer, at most")

    @model_validator(mode="after")
    def _token_off_localhost(self):
        register_secret(self.token)
        if self.enabled and not _is_loopback(self.host) and not self.token:
            raise ValueError(f"a token is required when binding to {self.host!r} (not loopback): set web.token")
        return self


@dataclass
class StreamStatus:
    name: str
    live: bool
    connected: bool
    state: str  # "decoding", "connecting", "ended", "failed"
    decoded: int
    frames_out: int
    dropped: int
    reconnects: int
    stalls: int
    decode_errors: int
    skipped_damaged: int
    connect_failures: int
    fps_in: float
    fps_out: float
    latency_ms: float
    last_error: str | None  # already redacted by the source
    width: int | None
    height: int | None


class _Frame:
    """The latest annotated frame of one stream, JPEG-encoded once, on first demand."""

    def __init__(self):
        self.cond = threading.Condition()
        self.image: np.ndarray | None = None
        self.sequence = 0
        self._jpeg: tuple[int, bytes] | None = None

    def jpeg(self, quality: int) -> tuple[int, bytes | None]:
        with self.cond:
            image, sequence, cached = self.image, self.sequence, self._jpeg
        if image is None:
            return 0, None
        if cached and cached[0] == sequence:
            return cached
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        encoded = (sequence, data.tobytes())
        with self.cond:
            if self.sequence == sequence:
                self._jpeg = encoded
        return encoded


class LiveView:
    def __init__(self, config: WebConfig, stream_names: list[str]):
        self.config = config
        self._frames = {name: _Frame() for name in stream_names}
        self._statuses: dict[str, StreamStatus] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((config.host, config.port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="live-view", daemon=True)
        self.closed = threading.Event()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> LiveView:
        self._thread.start()
        return self

    def publish(self, stream: str, image: np.ndarray) -> None:
        """The pipeline hands over each annotated frame; viewers encode it only if they watch."""
        frame = self._frames[stream]
        with frame.cond:
            frame.image, frame.sequence = image, frame.sequence + 1
            frame.cond.notify_all()

    def update_status(self, statuses: list[StreamStatus]) -> None:
        with self._lock:
            self._statuses = {s.name: s for s in statuses}

    def statuses(self) -> list[StreamStatus]:
        with self._lock:
            return list(self._statuses.values())

    def close(self) -> None:
        self.closed.set()
        for frame in self._frames.values():
            with frame.cond:
                frame.cond.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def _authorised(self, handler: BaseHTTPRequestHandler) -> bool:
        token = self.config.token
        if not token:
            return True
        query = parse_qs(urlsplit(handler.path).query)
        offered = query.get("token", [""])[0]
        header = handler.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            offered = header[7:]
        elif header.startswith("Basic "):
            try:
                offered = base64.b64decode(header[6:]).decode().split(":", 1)[1]
            except (ValueError, IndexError):
                offered = ""
        return hmac.compare_digest(offered.encode(), token.encode())

    def _handler_class(self):
        view = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "streamer"

            def log_message(self, format, *args):  # requests go to debug logging, never to stderr
                log.debug("web: " + format, *args)

            def do_GET(self):
                if not view._authorised(self):
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="streamer"')
                    self.end_headers()
                    return
                path = urlsplit(self.path).path
                if path == "/":
                    self._send(200, "text/html; charset=utf-8", INDEX_HTML.encode())
                elif path == "/api/streams":
                    body = json.dumps([asdict(s) for s in view.statuses()]).encode()
                    self._send(200, "application/json", body)
                elif path == "/metrics":
                    self._send(200, "text/plain; version=0.0.4", metrics.render(view.statuses()).encode())
                elif path.startswith("/streams/") and path.endswith((".mjpg", ".jpg")):
                    name, _, kind = path[len("/streams/"):].rpartition(".")
                    if name not in view._frames:
                        self._send(404, "text/plain", b"no such stream\n")
                    elif kind == "jpg":
                        _, data = view._frames[name].jpeg(view.config.jpeg_quality)
                        if data:
                            self._send(200, "image/jpeg", data)
                        else:
                            self._send(503, "text/plain", b"no frame yet\n")
                    else:
                        self._mjpeg(view._frames[name])
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _send(self, code: int, content_type: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _mjpeg(self, frame: _Frame) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                sent, min_gap = -1, 1.0 / view.config.max_fps
                try:
                    while not view.closed.is_set():
                        with frame.cond:
                            if frame.sequence == sent:
                                frame.cond.wait(1.0)
                        sequence, data = frame.jpeg(view.config.jpeg_quality)
                        if data is None or sequence == sent:
                            continue
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(data)).encode() + b"\r\n\r\n" + data + b"\r\n")
                        sent = sequence
                        time.sleep(min_gap)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the viewer went away

        return Handler


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
