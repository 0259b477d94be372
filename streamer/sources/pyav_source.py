"""A source decoded with PyAV in its own thread."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from streamer.config import SourceConfig
from streamer.errors import SourceError
from streamer.records import VideoFrame
from streamer.redaction import redact, redact_url
from streamer.sources.buffers import FrameQueue, LatestFrameSlot

log = logging.getLogger(__name__)
MAX_CONSECUTIVE_DECODE_ERRORS = 25


@dataclass
class SourceStats:
    decoded: int = 0
    dropped: int = 0
    decode_errors: int = 0


class PyAVSource:
    """Opens on ``open()`` (in the caller's thread, so a bad source fails at start-up), decodes on ``start()``."""

    def __init__(self, config: SourceConfig, queue_frames: int = 8):
        self.config = config
        self.name = config.name
        self.display_uri = redact_url(config.uri)
        self._buffer = FrameQueue(queue_frames) if config.keeps_every_frame else LatestFrameSlot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._container = None
        self.stats = SourceStats()
        self.error: str | None = None  # set when decoding ended on a failure
        self.finished = threading.Event()  # decoder thread is done (end of stream, error or stop)
        self.fps: float = 0.0
        self.total_frames: int | None = None
        self.size: tuple[int, int] | None = None

    @property
    def live(self) -> bool:
        return self.config.is_live

    def open(self) -> None:
        import av

        cfg = self.config
        options = dict(cfg.options)
        if cfg.is_live and cfg.uri.lower().startswith("rtsp") and "rtsp_transport" not in options:
            options["rtsp_transport"] = "tcp"  # UDP loses packets on busy networks: smeared frames
        try:
            self._container = av.open(
                cfg.uri, mode="r", options=options, timeout=(cfg.open_timeout_s, cfg.read_timeout_s)
            )
        except FileNotFoundError:
            raise SourceError(f"source {self.name!r}: file not found: {self.display_uri}") from None
        except Exception as exc:  # av.error.* carry the URL (with any password) in their text
            raise SourceError(f"source {self.name!r}: cannot open {self.display_uri}: {_describe(exc)}") from None
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"source {self.name!r}: no video stream in {self.display_uri}")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.base_rate or stream.guessed_rate
        self.fps = float(rate) if rate else 25.0
        self.total_frames = _frame_count(stream, self._container) if not cfg.is_live else None
        if cfg.max_frames:
            self.total_frames = min(self.total_frames or cfg.max_frames, cfg.max_frames)
        self.size = (stream.codec_context.width, stream.codec_context.height)

    def start(self) -> None:
        if self._container is None:
            self.open()
        self._thread = threading.Thread(target=self._decode_loop, name=f"decode-{self.name}", daemon=True)
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
        self._stop.set()
        self._buffer.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._container is not None and (self._thread is None or not self._thread.is_alive()):
            self._container.close()
            self._container = None

    def _decode_loop(self) -> None:
        import av

        container = self._container
        stream = container.streams.video[0]
        consecutive_errors = 0
        index = 0
        try:
            packets = container.demux(stream)
            while not self._stop.is_set():
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                try:
                    frames = packet.decode()
                    consecutive_errors = 0
                except av.error.FFmpegError as exc:
                    self.stats.decode_errors += 1
                    consecutive_errors += 1
                    if consecutive_errors > MAX_CONSECUTIVE_DECODE_ERRORS:
                        raise
                    log.debug("%s: decode error skipped: %s", self.name, redact(str(exc)))
                    continue
                for av_frame in frames:
                    self._emit(av_frame, index)
                    index += 1
                    if self.config.max_frames and index >= self.config.max_frames:
                        return
        except Exception as exc:
            self.error = (
                f"source {self.name!r}: decoding {self.display_uri} failed after {index} frames: {_describe(exc)}"
            )
        finally:
            self.finished.set()
            self._buffer.wake()

    def _emit(self, av_frame, index: int) -> None:
        image = av_frame.to_ndarray(format="bgr24")
        pts = float(av_frame.time) if av_frame.time is not None else None
        frame = VideoFrame(self.name, index, np.ascontiguousarray(image), pts, time.time(), time.monotonic())
        self.stats.decoded += 1
        self._buffer.put(frame, self._stop)


def _describe(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return redact(str(text))


def _frame_count(stream, container) -> int | None:
    if stream.frames:
        return int(stream.frames)
    if stream.duration and stream.time_base and stream.average_rate:
        return int(float(stream.duration * stream.time_base) * float(stream.average_rate))
    if container.duration and stream.average_rate:
        return int(container.duration / 1_000_000 * float(stream.average_rate))
    return None
