"""One stream's annotated recording: a single MP4, or consecutive segments of ``segment_s`` each.

Segments are cut by frame count (``segment_s`` x the stream's frame rate), so a file analysed
faster than real time is cut the same as a live camera. Each segment is a fragmented MP4
(see ``Mp4Writer``), playable even if the process is killed while it is being written.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from streamer.sinks.mp4 import Mp4Writer


class Recording:
    def __init__(self, out_dir: Path, stream: str, fps: float, size: tuple[int, int], codec: str, crf: int,
                 segment_s: float | None = None):
        self.out_dir, self.stream, self.fps, self.size = out_dir, stream, fps, size
        self.codec, self.crf = codec, crf
        self.frames_per_segment = max(1, round(segment_s * fps)) if segment_s else None
        self.paths: list[Path] = []
        self.frames = 0
        self._writer: Mp4Writer | None = None

    def write(self, image: np.ndarray) -> None:
        if self._writer is None or (self.frames_per_segment and self._writer.frames >= self.frames_per_segment):
            self._rotate()
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _rotate(self) -> None:
        self.close()
        if self.frames_per_segment is None:
            path = self.out_dir / f"{self.stream}.mp4"
        else:
            stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            path = self.out_dir / self.stream / f"{self.stream}-{stamp}-{len(self.paths):05d}.mp4"
        self._writer = Mp4Writer(path, self.fps, self.size, self.codec, self.crf)
        self.paths.append(path)
