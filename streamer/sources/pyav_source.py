"""A source decoded with PyAV in its own thread, supervised: it reconnects, detects stalls, skips damage.

Files open in the caller's thread, so a missing or unreadable file fails at start-up. Live sources
connect in their own thread and keep trying, with capped exponential backoff and jitter, so a
camera that is down never holds up the others; a drop, an end of stream or a stall (no data for
``stall_timeout_s``, enforced by PyAV's read timeout) leads to a reconnect. Liveness uses the
monotonic clock; frames carry the wall clock for event times.
"""

from __future__ import annotations

import errno
import logging
import random
import threading

import av

from streamer.config import SourceConfig
from streamer.errors import SourceError
from streamer.redaction import redact
from streamer.sources.base import SourceStats, ThreadedSource

log = logging.getLogger(__name__)
MAX_CONSECUTIVE_DECODE_ERRORS = 25  # on a file: this many failing packets in a row is a broken file
# Streams refreshed without key frames (intra refresh) would never pass the damage gate: after this
# long it lets them through.
MAX_WAIT_FOR_KEY_FRAME_S = 10.0

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
    "": "file",  # files, and V4L2 devices (which open their own path)
    "file": "file",
}


class PyAVSource(ThreadedSource):
    """Files, network cameras (rtsp, rtsps, http(s) MJPEG/HLS/MPEG-TS, rtmp, udp, srt) and V4L2 webcams."""

    def __init__(self, config: SourceConfig, queue_frames: int = 8, frame_ready: threading.Event | None = None):
        super().__init__(config, queue_frames, frame_ready)
        self.reconnects_enabled = config.reconnect if config.reconnect is not None else config.is_live
        self._container = None

    def open(self) -> None:
        """Files: open now and fail with a one-line error. Live sources connect in their thread."""
        if not self.live:
            self._connect()

    def _produce(self) -> None:
        backoff = self.config.backoff_initial_s
        failures_in_a_row = 0
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
            if self.sessions:
                self.stats.reconnects += 1
                log.warning("source %r: reconnected to %s", self.name, self.display_uri)
            self.sessions += 1
            backoff, failures_in_a_row = self.config.backoff_initial_s, 0
            self._decode()
            self._release()
            if not self.reconnects_enabled or self.error:
                return

    def _connect(self) -> None:
        cfg = self.config
        # The whitelist comes last: no configured option can widen what a source may open.
        options = {**_default_options(cfg), **cfg.options, "protocol_whitelist": PROTOCOLS[_scheme(cfg.uri)]}
        # Measured on a stalled RTSP stream: FFmpeg gives up after twice PyAV's read timeout (its demuxer
        # retries the read once), so half the configured stall time keeps detection within it.
        read_timeout = cfg.stall_timeout_s / 2 if cfg.is_live else cfg.stall_timeout_s
        try:
            container = av.open(cfg.uri, mode="r", format=cfg.input_format, options=options,
                                timeout=(cfg.open_timeout_s, read_timeout))
        except FileNotFoundError:
            what = "device" if cfg.kind == "device" else "file"
            raise SourceError(f"source {self.name!r}: {what} not found: {self.display_uri}") from None
        except Exception as exc:  # av.error.* carry the URL (with any password) in their text
            hint = _tls_hint(exc, options)
            raise SourceError(f"source {self.name!r}: cannot open {self.display_uri}: {_describe(exc)}{hint}") from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"source {self.name!r}: no video stream in {self.display_uri}")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.base_rate or stream.guessed_rate
        self.fps = float(rate) if rate else 25.0
        if not cfg.is_live:
            self.total_frames = _frame_count(stream, container)
            self.total_exact = bool(stream.frames)
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
        gate = DamageGate(round(MAX_WAIT_FOR_KEY_FRAME_S * self.fps), self.stats)
        try:
            for packet in container.demux(stream):
                if self._stop.is_set():
                    return
                if packet.is_corrupt:  # the demuxer saw it damaged (MPEG-TS continuity, ...)
                    self.stats.decode_errors += 1
                    gate.damaged()
                if not gate.passes_packet(packet):
                    continue
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as exc:
                    self.stats.decode_errors += 1
                    consecutive_errors += 1
                    gate.damaged()
                    if not self.live and consecutive_errors > MAX_CONSECUTIVE_DECODE_ERRORS:
                        raise
                    log.debug("%s: corrupt packet skipped: %s", self.name, redact(str(exc)))
                    continue
                consecutive_errors = 0
                for av_frame in frames:
                    if av_frame.is_corrupt:  # the decoder concealed damage in it
                        self.stats.decode_errors += 1
                    if not gate.passes_frame(av_frame):
                        continue
                    pts = float(av_frame.time) if av_frame.time is not None else None
                    self._deliver(av_frame.to_ndarray(format="bgr24"), pts)
                    if self._enough_frames:
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

    def _release(self) -> None:
        container, self._container = self._container, None
        self.connected.clear()
        if container is not None:
            try:
                container.close()
            except Exception:  # closing a broken connection can fail too; nothing is left to save
                pass


class DamageGate:
    """After damage, holds back what was predicted from broken frames, up to the next key frame.

    Two steps, because a threaded decoder returns frames a few packets late: packets are skipped up
    to a key packet (decoding what depends on the damage is wasted work), and frames still coming
    out of the decoder are dropped until the key frame does; each is counted in ``stats``.
    """

    def __init__(self, max_wait_packets: int, stats: SourceStats):
        self.max_wait_packets = max(1, max_wait_packets)
        self.stats = stats
        self.skip_packets = self.drop_frames = False
        self.waited = 0
        self.resume_pts: int | None = None  # the key packet decoding resumed at

    def damaged(self) -> None:
        self.skip_packets = self.drop_frames = True
        self.waited, self.resume_pts = 0, None

    def passes_packet(self, packet) -> bool:
        # (the demuxer's last, empty packet must be decoded: it flushes the decoder's delayed frames)
        if not self.skip_packets or not packet.size:
            return True
        if packet.is_keyframe and not packet.is_corrupt:
            self.skip_packets, self.resume_pts = False, packet.pts
            return True
        self.waited += 1
        if self.waited > self.max_wait_packets:
            self.skip_packets = self.drop_frames = False
            return True
        self.stats.skipped_damaged += 1
        return False

    def passes_frame(self, frame) -> bool:
        if frame.is_corrupt:
            self.damaged()
        elif not self.drop_frames or self._resumes_at(frame) or self.waited > self.max_wait_packets:
            self.drop_frames = False
            return True
        self.stats.skipped_damaged += 1
        return False

    def _resumes_at(self, frame) -> bool:
        # A key frame still in the decoder from before the damage must not open the gate.
        if not frame.key_frame or self.skip_packets:
            return False
        return self.resume_pts is None or frame.pts is None or frame.pts >= self.resume_pts


def _default_options(cfg: SourceConfig) -> dict[str, str]:
    scheme = _scheme(cfg.uri)
    options = {}
    if scheme.startswith("rtsp"):
        options["rtsp_transport"] = "tcp"  # UDP loses packets on busy networks: smeared frames
        # FFmpeg reads 5 s of a stream to learn its layout; a camera's SDP already says most of it. Measured on the
        # tests' RTSP server: a camera opens in 1.1 s instead of 3 s, with the same frame rate found. Every
        # reconnect, and a cluster worker's cameras after it is restarted, are the quicker for it.
        options["analyzeduration"] = "1000000"
    if scheme in ("rtsps", "https"):
        # FFmpeg does not check certificates unless asked: a camera that cannot prove who it is
        # is refused (options.ca_file trusts a camera's own certificate).
        options["tls_verify"] = "1"
    return options


def _tls_hint(exc: Exception, options: dict[str, str]) -> str:
    if options.get("tls_verify") == "1" and getattr(exc, "errno", None) == errno.EIO:
        return (" (TLS: is the camera's certificate trusted? set options.ca_file to its certificate, "
                "or options.tls_verify: '0' to accept any)")
    return ""


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
