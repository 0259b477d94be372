"""Pushes one stream's annotated video to an RTSP server (mediamtx, gst-rtsp-server in record mode, ...).

The pipeline hands frames over without ever waiting: a slot of the newest frames (2 s of them) sits
between it and the pushing thread, so a slow or absent server costs dropped (counted) frames, never
pipeline time; at the end, what is waiting is still sent while the server is there.
The thread connects with capped backoff, encodes H.264 (zero latency) and reconnects when the
server goes away. Passwords in the URL are masked in every message.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from streamer.records import VideoFrame
from streamer.redaction import redact, redact_url
from streamer.sinks.base import AnnotatedFrame
from streamer.sinks.mp4 import H264Writer
from streamer.sources.buffers import LatestFrameSlot

log = logging.getLogger(__name__)
BUFFER_S = 2.0


class RtspPush:
    def __init__(self, url: str, stream: str, fps: float, size: tuple[int, int], options: dict[str, str] | None = None,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0):
        self.url, self.stream = url, stream
        # As for rtsps cameras: the receiving server must prove who it is (options.ca_file, or tls_verify: "0").
        tls = {"tls_verify": "1"} if url.lower().startswith("rtsps") else {}
        self.options = {"rtsp_transport": "tcp", **tls, **(options or {})}
        self.display_url = redact_url(url)
        self.fps = fps if fps > 0 else 25.0
        self.size = size  # H264Writer rounds to even dimensions
        self.backoff = (backoff_initial_s, backoff_max_s)
        self.sent = 0
        self.reconnects = 0
        # Up to BUFFER_S of frames wait while the server is connected to (the RTSP handshake takes a moment)
        # or a frame takes long to send; beyond, the oldest are dropped: the pipeline never waits.
        self._slot = LatestFrameSlot(capacity=round(self.fps * BUFFER_S))
        self._stop = threading.Event()
        self._writer: H264Writer | None = None
        self._thread = threading.Thread(target=self._run, name=f"push-{stream}", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        return self._slot.dropped

    def push(self, image: np.ndarray) -> None:
        self._slot.put(VideoFrame(self.stream, self.sent, image, None, 0.0, time.monotonic()), self._stop)

    def write(self, frame: AnnotatedFrame) -> None:
        self.push(frame.image)

    def files(self) -> list:
        return []

    def close(self, timeout: float = 2.0) -> None:
        """Sends what is still waiting, if the server is there (at most ``timeout`` s), then disconnects."""
        if self._writer is not None:
            self._slot.wait_empty(timeout)
        self._stop.set()
        self._slot.wake()
        self._thread.join(timeout)

    def _run(self) -> None:
        # RTSP's handshake happens at the first write, so a refusing server fails in _send, not in
        # _connect: both count as one failure, with the same backoff; a sent frame resets it.
        wait, failures, ever_sent = self.backoff[0], 0, False
        try:
            while not self._stop.is_set():
                frame = self._slot.get(0.5)
                if frame is None:
                    continue
                try:
                    if self._writer is None:
                        self._connect()
                    self._send(frame.image)
                except Exception as exc:
                    failures += 1
                    level = logging.WARNING if failures == 1 else logging.DEBUG
                    log.log(level, "push %r: %s failed: %s; retrying in %.1f s",
                            self.stream, self.display_url, redact(str(exc)), wait)
                    self._disconnect(flush=False)
                    self._stop.wait(wait)
                    wait = min(wait * 2, self.backoff[1])
                    continue
                if failures and ever_sent:
                    self.reconnects += 1
                    log.warning("push %r: sending to %s again", self.stream, self.display_url)
                wait, failures, ever_sent = self.backoff[0], 0, True
        finally:
            self._disconnect(flush=True)

    def _connect(self) -> None:
        self._writer = H264Writer(self.url, self.fps, self.size, "rtsp", self.options,
                                  keyframe_s=1.0, timeout=(5.0, 5.0))

    def _send(self, image: np.ndarray) -> None:
        self._writer.write(image)
        self.sent += 1

    def _disconnect(self, flush: bool) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close(flush=flush)
        except Exception:  # the server may already be gone; what was sent stays sent
            pass
