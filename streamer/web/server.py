"""The live view's HTTP server (stdlib, one thread per connection, a bounded number of them).

Endpoints: ``/`` (index: every stream, its status and counters, its live video), ``/api/streams``
(JSON), ``/streams/NAME.mjpg`` (MJPEG of the annotated video), ``/streams/NAME.jpg`` (one frame),
``/metrics`` (Prometheus). Bound to localhost by default; on any other address a token is
required (``?token=``, ``Authorization: Bearer``, or basic auth with the token as password).
Nothing here ever holds a source URI, so no page can show a camera password.

With ``control`` (web.control), ``POST /api/streams`` (a JSON config ``sources`` entry) adds a camera
and ``DELETE /api/streams/NAME`` removes one. Those take the token in an ``Authorization: Bearer``
header only, always (on loopback too): a browser sends neither a query's token nor its remembered basic
credentials for a script on another site without asking the server first, so another page cannot
change the run.

With a console (web.console), ``/console`` is the operator console and ``/api/console/...`` its API
(web/console.py). Without a token it is read-only. Its changes take the token as any page does (a browser's
remembered basic credentials included) and, against cross-site requests, an ``X-Streamer-CSRF`` header
holding the token written into the console page (another site's script can neither read that page nor send a
custom header to this origin) and, when the browser sends one, an Origin that is this server. Without a token
(loopback only), a request must name a loopback host: a DNS-rebound name cannot reach the console's data.

Statuses are pulled from the run loop on every request, so a camera that stopped sending is shown as
it is now, not as it was when its last frame came.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import ipaddress
import json
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

import numpy as np
from pydantic import Field, model_validator

from streamer.config_base import StrictModel
from streamer.records import StreamStatus
from streamer.redaction import redact, register_secret
from streamer.web import console, metrics, placeholder
from streamer.web.console_page import CONSOLE_HTML
from streamer.web.frames import FrameHolder, FrameHolders
from streamer.web.page import INDEX_HTML

__all__ = ["LiveView", "StreamStatus", "WebConfig"]

log = logging.getLogger(__name__)

# A viewer waiting for frames is sent one at least this often, so a viewer that vanished without closing
# (unplugged, suspended) is found by a failed write. A little over 2 s: a reader of this MJPEG with a 2 s
# stall timeout (streamer's own MJPEG source) still notices when the pipeline stops publishing.
KEEPALIVE_S = 2.5
MAX_BODY = 64 * 1024  # a stream entry is a few hundred bytes
# A refused upload's body is read and dropped for at most this long and this much before the connection closes.
DRAIN_S, DRAIN_BYTES = 2.0, 16 * 2**20
_POLL_S = 0.5  # how often a waiting MJPEG viewer checks for a closed socket, a new state, the server closing
_BUSY_BODY = b"busy: too many connections, retry later\n"
_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 5\r\n"
         b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\nConnection: close\r\n\r\n" + _BUSY_BODY)


class WebConfig(StrictModel):
    enabled: bool = False
    host: str = Field("127.0.0.1", description="address to bind; anything but loopback needs a token")
    port: int = Field(8080, ge=0, le=65535, description="0 picks a free port")
    token: str | None = Field(None, description="required when host is not loopback; use ${ENV} for it")
    jpeg_quality: int = Field(80, ge=10, le=100)
    max_fps: float = Field(15.0, gt=0, le=60, description="MJPEG frames per second per viewer, at most")
    request_timeout_s: float = Field(
        10.0, gt=0, le=300, description="a client silent this long while sending its request is disconnected"
    )
    max_connections: int = Field(
        64, ge=2, le=4096, description="connections served at once (one thread each); more are answered 503"
    )
    max_viewers: int = Field(
        16, ge=1, le=4096, description="MJPEG viewers at once, below max_connections so the API keeps threads"
    )
    control: bool = Field(False, description="add and remove cameras while running: POST /api/streams, DELETE "
                          "/api/streams/NAME, with the token as 'Authorization: Bearer' (needs web.token)")
    console: bool = Field(True, description="the operator console at /console: review sightings, name or reject "
                          "them, the face library, search by face; its changes (which need web.token: read-only "
                          "without) are audited in the store")
    max_upload_mb: float = Field(10.0, gt=0, le=100, description="largest photo the console accepts (enrol, search)")

    @model_validator(mode="after")
    def _token_off_localhost(self):
        register_secret(self.token)
        if self.enabled and not _is_loopback(self.host) and not self.token:
            raise ValueError(f"a token is required when binding to {self.host!r} (not loopback): set web.token")
        if self.control and not (self.enabled and self.token):
            raise ValueError("web.control needs web.enabled and a web.token: whoever can reach the port could "
                             "otherwise add cameras to the run")
        return self

    @model_validator(mode="after")
    def _viewers_leave_room(self):
        if self.max_viewers >= self.max_connections:
            raise ValueError(
                f"max_viewers ({self.max_viewers}) must be below max_connections ({self.max_connections}): "
                "viewers would take every thread and the page and /metrics would get no answer"
            )
        return self


class LiveView:
    """The live view of a run. ``statuses`` is called on every request for the streams' health as it is
    now (it must be cheap and thread-safe); ``publish`` hands over annotated frames."""

    def __init__(self, config: WebConfig, statuses: Callable[[], list[StreamStatus]], control=None, console=None):
        """``control``: a runtime.control.StreamControl where web.control is on; ``console``: a
        web.console.Console where web.console is on."""
        self.config = config
        self._statuses = statuses
        self.control = control
        self.console = console
        self._frames = FrameHolders()
        self._viewers = threading.BoundedSemaphore(config.max_viewers)
        self.closed = threading.Event()
        self._server = _BoundedServer((config.host, config.port), _handler_for(self), config.max_connections,
                                      config.request_timeout_s)
        self._thread = threading.Thread(target=self._server.serve_forever, name="live-view", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> LiveView:
        self._thread.start()
        return self

    def publish(self, stream: str, image: np.ndarray) -> None:
        """The pipeline hands over each annotated frame (not to be changed afterwards); viewers encode it
        only if they watch. A stream's holder is made on its first frame."""
        self._frames.get(stream).put(image)

    def statuses(self) -> list[StreamStatus]:
        return list(self._statuses())

    def status(self, stream: str) -> StreamStatus | None:
        return next((s for s in self.statuses() if s.name == stream), None)

    def close(self) -> None:
        self.closed.set()
        self._frames.wake_all()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        if self.console is not None:
            self.console.close()

    def _picture(self, status: StreamStatus, holder: FrameHolder) -> tuple[tuple, bytes]:
        """(what it shows, JPEG) for a viewer: the newest frame while the stream decodes, else a placeholder
        saying why there is no video. The key changes when the picture should."""
        if status.state == "decoding":
            sequence, data = holder.jpeg(self.config.jpeg_quality)
            if data is not None:
                return ("frame", sequence), data
        key = ("placeholder", status.state, status.last_frame_time)
        return key, placeholder.jpeg(status, self.config.jpeg_quality)

    def _picture_key(self, status: StreamStatus, holder: FrameHolder) -> tuple:
        """The key ``_picture`` would return, without encoding anything."""
        sequence = holder.sequence
        if status.state == "decoding" and sequence:
            return ("frame", sequence)
        return ("placeholder", status.state, status.last_frame_time)

    def _holder(self, stream: str) -> FrameHolder:
        return self._frames.get(stream)

    def _add_viewer(self) -> bool:
        return self._viewers.acquire(blocking=False)

    def _remove_viewer(self) -> None:
        self._viewers.release()

    def _authorised(self, handler: BaseHTTPRequestHandler) -> bool:
        token = self.config.token
        if not token:
            return True
        return hmac.compare_digest(_offered_token(handler).encode(), token.encode())

    def _host_allowed(self, handler: BaseHTTPRequestHandler) -> bool:
        """Without a token, only a loopback name reaches the server (a DNS-rebound name does not)."""
        if self.config.token:
            return True
        host = handler.headers.get("Host")
        if host is None:
            return True  # not a browser (every browser sends Host), so not a page of a rebound name
        host = host[1:].partition("]")[0] if host.startswith("[") else host.rpartition(":")[0] or host
        return _is_loopback(host)

    def _console_post_refused(self, handler: BaseHTTPRequestHandler, changes_gallery: bool
                              ) -> tuple[int, str] | None:
        """(status, why) a console POST or DELETE is refused, None when allowed: a loopback name without a
        token, a token for anything that changes the gallery (whoever can reach the port could otherwise
        erase people), the token as for any page, the page's CSRF header, and this server as the Origin
        when the browser says one."""
        if not self._host_allowed(handler):
            return 403, "this server answers to a loopback name only (set web.token)"
        if changes_gallery and not self.config.token:
            return 403, "the console changes the gallery only with a web.token set: without one it is read-only"
        if not self._authorised(handler):
            return 401, "the token is required"
        offered = handler.headers.get("X-Streamer-CSRF", "")
        if not hmac.compare_digest(offered.encode(), self.console.csrf_token.encode()):
            return 403, "the console page's X-Streamer-CSRF header is required (reload the console)"
        origin = handler.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != handler.headers.get("Host", ""):
            return 403, f"a request from another site ({redact(origin)[:80]}) may not change the gallery"
        return None

    def _may_change(self, handler: BaseHTTPRequestHandler) -> bool:
        """A request that changes the run: the token in an Authorization: Bearer header, nothing else."""
        header, token = handler.headers.get("Authorization", ""), self.config.token
        return bool(token) and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(),
                                                                                    token.encode())


def _offered_token(handler: BaseHTTPRequestHandler) -> str:
    header = handler.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:]
    if header.startswith("Basic "):
        try:
            return base64.b64decode(header[6:], validate=True).decode().split(":", 1)[1]
        except (ValueError, IndexError, binascii.Error, UnicodeDecodeError):
            return ""
    return parse_qs(urlsplit(handler.path).query).get("token", [""])[0]


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` of them: one more is answered 503 from the
    accepting thread, so a flood of idle connections cannot take a thread (and memory) each."""

    daemon_threads = True
    block_on_close = False  # viewers end on their own within _POLL_S of close(); nothing to join
    request_queue_size = 128  # a burst of connections waits in the kernel rather than being refused

    def __init__(self, address: tuple[str, int], handler: type, max_connections: int, request_timeout_s: float):
        self._slots = threading.BoundedSemaphore(max_connections)
        self.requests = _RequestDeadlines(request_timeout_s)
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            _refuse(request)
            self.shutdown_request(request)
            return
        self.requests.started(request)
        try:
            threading.Thread(target=self._serve, args=(request, client_address), name="live-view-client",
                             daemon=True).start()
        except RuntimeError:  # the process cannot start another thread
            self._slots.release()
            self.shutdown_request(request)

    def _serve(self, request, client_address) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self.requests.done(request)
            self._slots.release()

    def server_close(self) -> None:
        self.requests.close()
        super().server_close()


class _RequestDeadlines:
    """The whole request (its line and headers) must arrive within ``seconds`` of the connection, not each
    read: a client that trickles a byte every few seconds would otherwise hold its thread for ever. One
    thread for every connection shuts down those past their deadline."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._deadlines: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._reap, name="live-view-deadlines", daemon=True)
        self._thread.start()

    def started(self, connection: socket.socket) -> None:
        with self._lock:
            self._deadlines[connection] = time.monotonic() + self.seconds

    def done(self, connection: socket.socket) -> None:
        """The request arrived (or the connection ended): no deadline any more."""
        with self._lock:
            self._deadlines.pop(connection, None)

    def close(self) -> None:
        self._closed.set()

    def _reap(self) -> None:
        while not self._closed.wait(min(0.25, self.seconds / 4)):
            now = time.monotonic()
            with self._lock:
                late = [c for c, deadline in self._deadlines.items() if deadline <= now]
                for connection in late:
                    del self._deadlines[connection]
            for connection in late:
                try:
                    connection.shutdown(socket.SHUT_RDWR)  # its handler's read returns at once; it ends
                except OSError:
                    pass

    def handle_error(self, request, client_address) -> None:
        # A client's mistake or a vanished socket is not worth a traceback on stderr.
        log.debug("live view: error serving %s", client_address, exc_info=True)


def _refuse(request: socket.socket) -> None:
    """503 without waiting: whatever the client sent is read first so the close does not reset the
    connection before the answer is read. Best effort; the client may only see the close."""
    try:
        request.setblocking(False)
        request.recv(65536)
    except OSError:
        pass
    try:
        request.send(_BUSY)
    except OSError:
        pass


def _handler_for(view: LiveView) -> type:
    return type("LiveViewHandler", (_Handler,), {"view": view, "timeout": view.config.request_timeout_s})


class _Handler(BaseHTTPRequestHandler):
    server_version = "streamer"
    view: LiveView
    timeout: float  # socket timeout: a half-sent request is dropped after it, and so is a stuck viewer

    def log_message(self, format, *args) -> None:  # requests go to debug logging, never to stderr
        log.debug("web: " + format, *args)

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        self.server.requests.done(self.connection)  # the request is in: a viewer may stay as long as it watches
        return parsed

    def log_request(self, code="-", size="-") -> None:
        # The path only: the query may carry the token.
        log.debug("web: %s %s %s", self.command, urlsplit(self.path).path, code)

    def do_GET(self) -> None:
        if not self.view._host_allowed(self):
            self._send(421, "text/plain", b"this server answers to a loopback name only (set web.token)\n")
            return
        if not self.view._authorised(self):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="streamer"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = urlsplit(self.path).path
        try:
            self._route(path)
        except OSError:
            pass  # the client went away mid-answer
        except Exception:  # the status callable failed: say so instead of dropping the connection
            log.warning("live view: failed to answer %s", path, exc_info=True)
            self._send(500, "text/plain", b"internal error, see the run's log\n")

    def do_POST(self) -> None:
        if urlsplit(self.path).path.startswith(console.API):
            self._console_change()
        else:
            self._change(self._add_stream)

    def do_DELETE(self) -> None:
        if urlsplit(self.path).path.startswith(console.API):
            self._console_change()
        else:
            self._change(self._remove_stream)

    def _console_change(self) -> None:
        view, path = self.view, urlsplit(self.path).path
        try:
            if view.console is None:
                self._refuse_unread(404, "the console is off (web.console)")
                return
            refused = view._console_post_refused(self, changes_gallery=not path.startswith(console.API + "search"))
            if refused:
                headers = {"WWW-Authenticate": 'Basic realm="streamer"'} if refused[0] == 401 else {}
                self._refuse_unread(*refused, headers)
                return
            if self.headers.get("Transfer-Encoding"):
                self._refuse_unread(411, "a Content-Length is required")
                return
            try:
                length = int(self.headers.get("Content-Length", "0") or "0")
            except ValueError:
                self._refuse_unread(400, "a bad Content-Length")
                return
            limit = view.console.max_upload_bytes
            if not 0 <= length <= limit:
                self._refuse_unread(413, f"larger than {limit // 2**20} MiB (web.max_upload_mb)")
                return
            # Photos are held and decoded a few at a time: many connections at once cannot each hold one.
            slots = view.console.upload_slots.take() if length > 64 * 1024 else contextlib.nullcontext(True)
            with slots as free:
                if not free:
                    self._refuse_unread(503, "other photos are being read: retry in a moment", {"Retry-After": "2"})
                    return
                self._console(self.rfile.read(length) if length else b"")
        except OSError:
            pass  # the client went away mid-answer
        except Exception:
            log.warning("console: failed to answer %s %s", self.command, path, exc_info=True)
            self._json(500, {"error": "internal error, see the run's log"})

    def _refuse_unread(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        """An answer before the body was read. The connection closes after it; what the client still sends is
        read and dropped for a moment (a bounded amount), so the close does not reset the connection before the
        client has read why (a browser would show only "failed to fetch")."""
        self.close_connection = True
        self._json(code, {"error": message}, {"Connection": "close", **(headers or {})})
        self.wfile.flush()
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(DRAIN_S)
            left, deadline = DRAIN_BYTES, time.monotonic() + DRAIN_S
            while left > 0 and time.monotonic() < deadline:
                data = self.connection.recv(min(left, 65536))
                if not data:
                    break
                left -= len(data)
        except OSError:
            pass

    def _console(self, body: bytes = b"") -> None:
        parts = urlsplit(self.path)
        request = console.ConsoleRequest(
            method=self.command, parts=console.split_path(parts.path),
            query={k: v[-1] for k, v in parse_qs(parts.query).items() if k != "token"}, body=body,
            content_type=self.headers.get_content_type(), operator=unquote(self.headers.get("X-Operator", "")),
            client=self.client_address[0], filename=unquote(self.headers.get("X-Filename", "")))
        reply = self.view.console.handle(request)
        self._send(reply.status, reply.content_type, reply.body, reply.headers)

    def _change(self, action) -> None:
        view, path = self.view, urlsplit(self.path).path
        try:
            if view.control is None:
                self._json(405, {"error": "changing the run's streams is off (web.control)"}, {"Allow": "GET"})
            elif not view._may_change(self):
                self._json(401, {"error": "the token is required as an 'Authorization: Bearer' header"},
                           {"WWW-Authenticate": 'Bearer realm="streamer"'})
            else:
                action(path)
        except OSError:
            pass  # the client went away mid-answer
        except Exception:
            log.warning("live view: failed to answer %s %s", self.command, path, exc_info=True)
            self._json(500, {"error": "internal error, see the run's log"})

    def _add_stream(self, path: str) -> None:
        from streamer.runtime.control import ControlError

        if path != "/api/streams":
            self._json(404, {"error": "not found: POST /api/streams"})
            return
        if self.headers.get_content_type() != "application/json":
            self._json(415, {"error": "expected Content-Type: application/json"})
            return
        entry = self._json_body()
        if entry is None:
            return
        try:
            status, applied = self.view.control.add(entry)
        except ControlError as exc:
            self._json(exc.status, {"error": redact(str(exc))})
            return
        if applied:
            self._json(201, asdict(status), {"Location": f"/api/streams/{quote(status.name)}"})
        else:
            self._json(202, {"name": entry.get("name"), "state": "being added"})

    def _remove_stream(self, path: str) -> None:
        from streamer.runtime.control import ControlError

        if not path.startswith("/api/streams/"):
            self._json(404, {"error": "not found: DELETE /api/streams/NAME"})
            return
        name = unquote(path[len("/api/streams/"):])
        try:
            status, applied = self.view.control.remove(name)
        except ControlError as exc:
            self._json(exc.status, {"error": str(exc)})
            return
        self._json(200, asdict(status)) if applied else self._json(202, {"name": name, "state": "being removed"})

    def _json_body(self):
        """The request's JSON body, or None once a 4xx answer said why it is not one."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._json(411, {"error": "a Content-Length is required"})
            return None
        if not 0 < length <= MAX_BODY:
            self._json(413, {"error": f"the body must be 1 to {MAX_BODY} bytes"})
            return None
        try:
            return json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError) as exc:
            self._json(400, {"error": f"the body is not JSON: {exc}"})
            return None

    def _json(self, code: int, body, headers: dict[str, str] | None = None) -> None:
        self._send(code, "application/json", json.dumps(body).encode(), headers)

    def _route(self, path: str) -> None:
        if path == "/":
            self._send(200, "text/html; charset=utf-8", INDEX_HTML.encode())
        elif path in ("/console", "/console/") and self.view.console is not None:
            page = CONSOLE_HTML.replace("@CSRF@", self.view.console.csrf_token).replace(
                "@CHANGES@", "1" if self.view.config.token else "0")
            self._send(200, "text/html; charset=utf-8", page.encode(),
                       {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; "
                        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; frame-ancestors 'none'",
                        "X-Frame-Options": "DENY"})
        elif path.startswith(console.API) and self.view.console is not None:
            self._console()
        elif path == "/api/streams":
            body = json.dumps([asdict(s) for s in self.view.statuses()]).encode()
            self._send(200, "application/json", body, {"X-Server-Time": f"{time.time():.3f}"})
        elif path.startswith("/api/streams/"):
            status = self.view.status(unquote(path[len("/api/streams/"):]))
            if status is None:
                self._json(404, {"error": "no such stream"})
            else:
                self._json(200, asdict(status))
        elif path == "/metrics":
            self._send(200, "text/plain; version=0.0.4", metrics.render(self.view.statuses()).encode())
        elif path.startswith("/streams/") and path.endswith((".mjpg", ".jpg")):
            name, _, kind = unquote(path[len("/streams/"):]).rpartition(".")
            status = self.view.status(name)
            if status is None:
                self._send(404, "text/plain", b"no such stream\n")
            elif kind == "jpg":
                _, data = self.view._picture(status, self.view._holder(name))
                self._send(200, "image/jpeg", data, {"X-Stream-State": status.state})
            else:
                self._viewer(name)
        else:
            self._send(404, "text/plain", b"not found\n")

    def _send(self, code: int, content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _viewer(self, name: str) -> None:
        if not self.view._add_viewer():
            limit = self.view.config.max_viewers
            reason = f"too many viewers: at most {limit} at once (web.max_viewers)\n"
            self._send(503, "text/plain", reason.encode(), {"Retry-After": "5"})
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            _MjpegFeed(self.view, name, self.connection, self.wfile).run()
        finally:
            self.view._remove_viewer()


class _MjpegFeed:
    """Sends one viewer the stream's pictures until it goes away or the view closes. A new part goes out
    when the picture changes (a new frame, a new state) and at least every KEEPALIVE_S."""

    def __init__(self, view: LiveView, name: str, connection: socket.socket, out):
        self.view, self.name, self.connection, self.out = view, name, connection, out
        self.holder = view._holder(name)
        self.min_gap = 1.0 / view.config.max_fps

    def run(self) -> None:
        sent_key, sent_at, status, status_at = None, 0.0, None, float("-inf")
        try:
            while not self.view.closed.is_set():
                now = time.monotonic()
                if now - status_at >= _POLL_S:  # the state matters, but not per frame per viewer
                    status, status_at = self.view.status(self.name), now
                    if status is None:
                        return  # the stream was removed
                if self.view._picture_key(status, self.holder) != sent_key or now - sent_at >= KEEPALIVE_S:
                    sent_key, data = self.view._picture(status, self.holder)
                    self._write(data)
                    sent_at = time.monotonic()
                    time.sleep(self.min_gap)
                # Showing a frame: wake for the next one. Showing a placeholder: frames do not matter until
                # the state changes, which the next status look (every _POLL_S) finds.
                self.holder.wait_newer(sent_key[1] if sent_key[0] == "frame" else self.holder.sequence, _POLL_S)
                if _closed_by_peer(self.connection):
                    return
        except OSError:
            pass  # the viewer went away (reset, broken pipe) or stopped reading (write timeout)
        except Exception:
            log.warning("live view: MJPEG of %r failed", self.name, exc_info=True)

    def _write(self, data: bytes) -> None:
        self.out.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " + str(len(data)).encode()
                       + b"\r\n\r\n" + data + b"\r\n")


def _closed_by_peer(connection: socket.socket) -> bool:
    """True once the viewer has closed its end: the socket reads as ready and a peek gives 0 bytes.
    A viewer never sends anything after its request, so this costs nothing while it watches."""
    try:
        poller = select.poll()
        poller.register(connection, select.POLLIN | select.POLLPRI)
        if not poller.poll(0):
            return False
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
