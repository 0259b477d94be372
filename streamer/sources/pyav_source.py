"""A source decoded with PyAV in its own thread, supervised: it reconnects, detects stalls, skips damage.

Files open in the caller's thread, so a missing or unreadable file fails at start-up. Live sources
connect in their own thread and keep trying, with capped exponential backoff and jitter, so a
camera that is down never holds up the others; a drop, an end of stream or a stall (no data for
``stall_timeout_s``, enforced by PyAV's read timeout) leads to a reconnect. Liveness uses the
monotonic clock; frames carry the wall clock for event times.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass

import av
import numpy as np

from streamer.config import SourceConfig
from streamer.errors import SourceError
from streamer.rate import RateMeter
from streamer.records import VideoFrame
from streamer.redaction import redact, redact_url
from streamer.sources.buffers import FrameQueue, LatestFrameSlot

log = logging.getLogger(__name__)
MAX_CONSECUTIVE_DECODE_ERRORS = 25  # on a file: this many failing packets in a row is a broken file

# What FFmpeg may open for each kind of source, including what a stream refers to (HLS segments,
# RTSP's RTP channels, HTTP redirects). Defence in depth: FFmpeg's HLS demuxer already refuses
# file: segments in an http playlist (tests/test_cli.py checks the outcome), and this list keeps
# any other path from a network source to local files or unexpected protocols shut.
PROTOCOLS = {
    "rtsp": "rtsp,rtp,srtp,udp,tcp",
    "rtsps": "rtsps,rtsp,rtp,srtp,udp,tcp,tls",
    "http": "http,tcp,crypto,httpproxy",
    "https": "https,http,tcp,tls,crypto,httpproxy",
    "rtmp": "rtmp,tcp",
    "udp": "udp,rtp",
    "tcp": "tcp",
    "srt": "srt,udp",
    "": "file",
    "file": "file",
}


@dataclass
class SourceStats:
    decoded: int = 0
    dropped: int = 0
    decode_errors: int = 0
    reconnects: int = 0  # successful connections after the first
    stalls: int = 0  # reads that timed out on a connected stream
    connect_failures: int = 0


class PyAVSource:
    def __init__(self, config: SourceConfig, queue_frames: int = 8, frame_ready: threading.Event | None = None):
        """``frame_ready``, if given, is set after every decoded frame: one event the consumer can
        wait on for all its sources, instead of waiting on each in turn."""
        self.config = config
        self.name = config.name
        self.display_uri = redact_url(config.uri)
        self.reconnects_enabled = config.reconnect if config.reconnect is not None else config.is_live
        self._buffer = FrameQueue(queue_frames) if config.keeps_every_frame else LatestFrameSlot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._container = None
        self.stats = SourceStats()
        self.error: str | None = None  # why decoding ended, when it ended on a failure
        self.last_error: str | None = None  # the latest connection or stream problem (redacted), for status
        self.connected = threading.Event()
        self.finished = threading.Event()  # the decoding thread has ended
        self.fps: float = 0.0
        self.total_frames: int | None = None
        self.size: tuple[int, int] | None = None
        self._index = 0
        self._pace_origin: tuple[float, float] | None = None  # (monotonic time, pts) of the first paced frame
        self._frame_ready = frame_ready
        self._input_rate = RateMeter()

    @property
    def live(self) -> bool:
        return self.config.is_live

    @property
    def fps_in(self) -> float:
        """Frames decoded per second over the last 5 s (the camera's real rate, not its nominal one)."""
        return self._input_rate.rate

    @property
    def state(self) -> str:
        """decoding, connecting (waiting for or retrying a connection), ended, or failed."""
        if self.connected.is_set():
            return "decoding"
        if self.finished.is_set():
            return "failed" if self.error else "ended"
        return "connecting"

    def open(self) -> None:
        """Files: open now and fail with a one-line error. Live sources connect in their thread."""
        if not self.live:
            self._connect()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"source-{self.name}", daemon=True)
        self._thread.start()

    def read(self, timeout: float) -> VideoFrame | None:
        """The next frame, or None if none arrived within ``timeout`` seconds."""
        frame = self._buffer.get(timeout)
        self.stats.dropped = self._buffer.dropped
        return frame

    @property
    def exhausted(self) -> bool:
        """No more frames will come: the decoder ended and everything buffered was read."""
        return self.finished.is_set() and len(self._buffer) == 0

    def stop(self, timeout: float = 2.0) -> None:
        """Asks the thread to end and waits at most ``timeout`` s.

        A thread blocked inside FFmpeg ends when its read times out (``stall_timeout_s``); it is a
        daemon thread and holds no lock the caller needs, so stop() need not wait for it.
        """
        self._stop.set()
        self._buffer.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            self._close()

    # -- the decoding thread ---------------------------------------------------------------

    def _run(self) -> None:
        backoff = self.config.backoff_initial_s
        sessions = 0
        failures_in_a_row = 0
        try:
            while not self._stop.is_set():
                if self._container is None:  # files were opened by open(); live sources connect here
                    try:
                        self._connect()
                    except SourceError as exc:
                        if not self.reconnects_enabled:
                            self.error = str(exc)
                            return
                        self.stats.connect_failures += 1
                        failures_in_a_row += 1
                        # Jitter, so cameras behind one switch that failed together don't retry in step.
                        wait = backoff * random.uniform(0.8, 1.2)
                        self._note(f"{exc}; retrying in {wait:.1f} s", first_failure=failures_in_a_row == 1)
                        backoff = min(backoff * 2, self.config.backoff_max_s)
                        self._stop.wait(wait)
                        continue
                if sessions:
                    self.stats.reconnects += 1
                    log.warning("source %r: reconnected to %s", self.name, self.display_uri)
                sessions += 1
                backoff, failures_in_a_row = self.config.backoff_initial_s, 0
                self._decode()
                self._close()
                if not self.reconnects_enabled or self.error:
                    return
        finally:
            self._close()
            self.finished.set()
            self._buffer.wake()
            if self._frame_ready is not None:
                self._frame_ready.set()

    def _connect(self) -> None:
        cfg = self.config
        options = {"protocol_whitelist": PROTOCOLS[_scheme(cfg.uri)], **cfg.options}
        if cfg.is_live and cfg.uri.lower().startswith("rtsp") and "rtsp_transport" not in options:
            options["rtsp_transport"] = "tcp"  # UDP loses packets on busy networks: smeared frames
        # Measured on a stalled RTSP stream: FFmpeg gives up after twice PyAV's read timeout (its demuxer
        # retries the read once), so half the configured stall time keeps detection within it.
        read_timeout = cfg.stall_timeout_s / 2 if cfg.is_live else cfg.stall_timeout_s
        try:
            container = av.open(cfg.uri, mode="r", options=options, timeout=(cfg.open_timeout_s, read_timeout))
        except FileNotFoundError:
            raise SourceError(f"source {self.name!r}: file not found: {self.display_uri}") from None
        except Exception as exc:  # av.error.* carry the URL (with any password) in their text
            raise SourceError(f"source {self.name!r}: cannot open {self.display_uri}: {_describe(exc)}") from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"source {self.name!r}: no video stream in {self.display_uri}")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.base_rate or stream.guessed_rate
        self.fps = float(rate) if rate else 25.0
        if not cfg.is_live:
            self.total_frames = _frame_count(stream, container)
            if cfg.max_frames:
                self.total_frames = min(self.total_frames or cfg.max_frames, cfg.max_frames)
        self.size = (stream.codec_context.width, stream.codec_context.height)
        self._container = container
        self.connected.set()

    def _decode(self) -> None:
        """Decodes until the stream ends, fails or stalls; sets ``error`` when a file fails."""
        container = self._container
        stream = container.streams.video[0]
        consecutive_errors = 0
        waiting_for_keyframe = False
        try:
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return
                # (the demuxer's last, empty packet must be decoded: it flushes the decoder's delayed frames)
                if waiting_for_keyframe and packet.size and not packet.is_keyframe:
                    continue  # after damage, a frame predicted from broken ones would be smeared
                waiting_for_keyframe = False
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as exc:
                    self.stats.decode_errors += 1
                    consecutive_errors += 1
                    waiting_for_keyframe = True
                    if not self.live and consecutive_errors > MAX_CONSECUTIVE_DECODE_ERRORS:
                        raise
                    log.debug("%s: corrupt packet skipped: %s", self.name, redact(str(exc)))
                    continue
                consecutive_errors = 0
                for av_frame in frames:
                    self._emit(av_frame)
                    if self.config.max_frames and self._index >= self.config.max_frames:
                        self._stop.set()
                        return
        except Exception as exc:
            if self._stop.is_set():
                return
            message = _describe(exc)
            if self.live and _is_timeout(exc):
                self.stats.stalls += 1
                timeout = self.config.stall_timeout_s
                self._note(f"source {self.name!r}: stalled, no data for {timeout:g} s; reconnecting")
            elif self.live:
                self._note(f"source {self.name!r}: stream from {self.display_uri} failed: {message}; reconnecting")
            else:
                self.error = (
                    f"source {self.name!r}: decoding {self.display_uri} failed after {self._index} frames: {message}"
                )

    def _emit(self, av_frame) -> None:
        pts = float(av_frame.time) if av_frame.time is not None else None
        if self.config.realtime and pts is not None:
            self._pace(pts)
        image = av_frame.to_ndarray(format="bgr24")
        frame = VideoFrame(self.name, self._index, np.ascontiguousarray(image), pts, time.time(), time.monotonic())
        self._index += 1
        self.stats.decoded += 1
        self._input_rate.tick(frame.decoded_at)
        self._buffer.put(frame, self._stop)
        if self._frame_ready is not None:
            self._frame_ready.set()

    def _pace(self, pts: float) -> None:
        """Waits until this frame's time has come, measured from the first frame (files as simulated cameras)."""
        if self._pace_origin is None or pts < self._pace_origin[1]:  # first frame, or the file looped
            self._pace_origin = (time.monotonic(), pts)
        due = self._pace_origin[0] + (pts - self._pace_origin[1])
        self._stop.wait(max(0.0, due - time.monotonic()))

    def _close(self) -> None:
        container, self._container = self._container, None
        self.connected.clear()
        if container is not None:
            try:
                container.close()
            except Exception:  # closing a broken connection can fail too; nothing is left to save
                pass

    def _note(self, message: str, first_failure: bool = True) -> None:
        # The first failure of a run of failures is a warning; repeats are logged quietly.
        self.last_error = message
        log.log(logging.WARNING if first_failure else logging.INFO, "%s", message)


def _scheme(uri: str) -> str:
    from urllib.parse import urlsplit

    scheme = urlsplit(uri).scheme.lower()
    return "" if len(scheme) <= 1 else scheme  # "C:" on Windows is a drive, not a scheme


def _describe(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return redact(str(text))


def _is_timeout(exc: Exception) -> bool:
    # PyAV's read timeout surfaces as an interrupted call (ExitError) or an OS timeout.
    return isinstance(exc, (av.error.ExitError, TimeoutError)) or "timed out" in str(exc).lower()


def _frame_count(stream, container) -> int | None:
    if stream.frames:
        return int(stream.frames)
    if stream.duration and stream.time_base and stream.average_rate:
        return int(float(stream.duration * stream.time_base) * float(stream.average_rate))
    if container.duration and stream.average_rate:
        return int(container.duration / 1_000_000 * float(stream.average_rate))
    return None
