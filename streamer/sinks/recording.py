"""One stream's annotated recording: a single MP4, or consecutive segments of ``segment_s`` each.

Segments are cut by frame count (``segment_s`` x the stream's frame rate), so a file analysed
faster than real time is cut the same as a live camera. Each segment is a fragmented MP4
(see ``Mp4Writer``), playable even if the process is killed while it is being written. A write that
fails (a full disk) raises ``OutputError`` naming the file; what was written before stays playable.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np

from streamer.errors import OutputError
from streamer.sinks.base import AnnotatedFrame, StreamInfo
from streamer.sinks.mp4 import Mp4Writer


class Recording:
    def __init__(self, out_dir: Path, stream: StreamInfo, codec: str, crf: int, segment_s: float | None = None):
        self.out_dir, self.stream, self.fps, self.size = out_dir, stream.name, stream.fps, stream.size
        self.codec, self.crf = codec, crf
        self.frames_per_segment = max(1, round(segment_s * stream.fps)) if segment_s else None
        self.paths: list[Path] = []
        self.frames = 0
        self._writer: Mp4Writer | None = None
        self._whole_bytes = 0
        self._failed = False

    def write(self, frame: AnnotatedFrame) -> None:
        self.write_image(frame.image)

    def write_image(self, image: np.ndarray) -> None:
        if self._failed:  # a new writer would start the file again: what was saved must stay
            raise OutputError(f"output: {self.paths[-1]} could not be written; nothing more is recorded")
        if self._writer is None or (self.frames_per_segment and self._writer.frames >= self.frames_per_segment):
            self._rotate()
        try:
            self._writer.write(image)
            # What the file holds after a successful write is whole fragments (the muxer writes a fragment
            # at once): the length to cut back to if a later write fails half-way.
            self._whole_bytes = _size(self.paths[-1])
        except OSError as exc:
            self._abandon()
            raise OutputError(f"output: cannot write {self.paths[-1]}: {exc.strerror or exc} "
                              f"(the recording plays up to the last fragment before frame {self.frames})") from None
        self.frames += 1

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except OSError as exc:
            raise OutputError(f"output: cannot finish {self.paths[-1]}: {exc.strerror or exc}") from None

    def files(self) -> list[Path]:
        return list(self.paths)

    def _abandon(self) -> None:
        """After a failed write: close without flushing (the encoder's buffered frames cannot be written),
        and cut off the half-written fragment, so the file plays to its end in any player."""
        writer, self._writer, self._failed = self._writer, None, True
        try:
            writer.close(flush=False)
        except OSError:
            pass
        try:
            os.truncate(self.paths[-1], self._whole_bytes)
        except OSError:
            pass  # a player still plays every whole fragment before the broken one

    def _rotate(self) -> None:
        self.close()
        if self.frames_per_segment is None:
            path = self.out_dir / f"{self.stream}.mp4"
        else:
            stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            path = self.out_dir / self.stream / f"{self.stream}-{stamp}-{len(self.paths):05d}.mp4"
        try:
            self._writer = Mp4Writer(path, self.fps, self.size, self.codec, self.crf)
        except OSError as exc:
            raise OutputError(f"output: cannot create {path}: {exc.strerror or exc}") from None
        self.paths.append(path)
        self._whole_bytes = 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # FFmpeg opens the file when it writes the header
        return 0
