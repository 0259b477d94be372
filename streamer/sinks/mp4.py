"""Annotated video encoded as H.264 with PyAV: into a file (``Mp4Writer``) or to a server (see rtsp_push).

Files are fragmented MP4 (an empty moov, then a fragment per keyframe): the file stays playable up
to the last fragment even if the process is killed or a source fails mid-way, instead of needing
the index that a normal MP4 writes at close.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


class H264Writer:
    """Encodes BGR frames (resized to ``size`` if needed) into one PyAV output: a path or a URL."""

    def __init__(self, target: str, fps: float, size: tuple[int, int], container_format: str,
                 container_options: dict[str, str], codec: str = "libx264", crf: int = 23,
                 keyframe_s: float = 2.0, timeout: tuple[float, float] | None = None):
        self.size = (size[0] - size[0] % 2, size[1] - size[1] % 2)  # yuv420p needs even dimensions
        self._container = av.open(target, mode="w", format=container_format, options=container_options,
                                  timeout=timeout)
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
        self._stream = self._container.add_stream(codec, rate=rate)
        self._stream.width, self._stream.height = self.size
        self._stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            # zerolatency: no lookahead or frame-threading delay, so encoded frames leave the encoder at once.
            self._stream.options = {
                "crf": str(crf), "preset": "veryfast", "tune": "zerolatency",
                "g": str(max(int(rate * keyframe_s), 1)),
            }
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        if (image.shape[1], image.shape[0]) != self.size:
            image = letterbox(image, self.size)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = self.frames
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self, flush: bool = True) -> None:
        """Flushes the encoder (unless the output is known to be gone) and closes the output."""
        if self._container is None:
            return
        try:
            if flush:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None


class Mp4Writer(H264Writer):
    def __init__(self, path: Path, fps: float, size: tuple[int, int], codec: str = "libx264", crf: int = 23):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # A keyframe at least every 2 s bounds what a kill can lose to one short fragment; flush_packets
        # makes each fragment reach the file when muxed, not when FFmpeg's I/O buffer fills.
        options = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}
        super().__init__(str(path), fps, size, "mp4", options, codec, crf, keyframe_s=2.0)


def letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` scaled to fit ``size`` (width, height) with its aspect ratio kept, on black: a
    camera that changes resolution mid-recording, or a folder of photos, is not stretched."""
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    fitted_w, fitted_h = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
    fitted = cv2.resize(image, (fitted_w, fitted_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.zeros((height, width, 3), np.uint8)
    top, left = (height - fitted_h) // 2, (width - fitted_w) // 2
    canvas[top:top + fitted_h, left:left + fitted_w] = fitted
    return canvas
