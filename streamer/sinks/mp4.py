"""Annotated MP4 written with PyAV.

Fragmented MP4 (an empty moov, then a fragment per keyframe): the file stays
playable up to the last fragment even if the process is killed or a source
fails mid-way, instead of needing the index that a normal MP4 writes at close.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np


class Mp4Writer:
    def __init__(self, path: Path, fps: float, size: tuple[int, int], codec: str = "libx264", crf: int = 23):
        import av

        self.path = path
        self.size = (size[0] - size[0] % 2, size[1] - size[1] % 2)  # yuv420p needs even dimensions
        path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(
            str(path), mode="w", format="mp4",
            # flush_packets: each fragment reaches the file when muxed, not when FFmpeg's I/O buffer fills.
            options={"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"},
        )
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
        self._stream = self._container.add_stream(codec, rate=rate)
        self._stream.width, self._stream.height = self.size
        self._stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            # A keyframe at least every 2 s bounds what a kill can lose to one short fragment.
            # zerolatency: no lookahead or frame-threading delay, so encoded frames leave the encoder at once.
            self._stream.options = {
                "crf": str(crf), "preset": "veryfast", "tune": "zerolatency", "g": str(max(int(rate * 2), 1)),
            }
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        import av

        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = self.frames
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None
