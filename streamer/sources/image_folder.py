"""A folder of images as a source: each image one frame, in natural name order (img2 before img10).

For batches of stills and for cameras that upload JPEG snapshots by FTP/SMB. With ``watch`` the
folder is polled for new images, which are taken once their size stops changing and (JPEG, PNG)
their end marker is there, so a file still being uploaded is not read half-written; each new image
needs a new name, as such cameras give. Frame times are index / ``fps``. An image that cannot be
read is skipped and counted as a decode error.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import cv2

from streamer.config import SourceConfig
from streamer.errors import SourceError
from streamer.sources.base import ThreadedSource

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
POLL_S = 0.25
GIVE_UP_WAITING_S = 10.0  # an image without its end marker whose size has not changed for this long is taken
_END_MARKERS = {".jpg": b"\xff\xd9", ".jpeg": b"\xff\xd9", ".png": b"IEND\xaeB`\x82"}


class ImageFolderSource(ThreadedSource):
    def __init__(self, config: SourceConfig, queue_frames: int = 8, frame_ready: threading.Event | None = None):
        super().__init__(config, queue_frames, frame_ready)
        self.folder = Path(config.uri.removeprefix("file:"))
        self.fps = config.fps or 1.0
        self._taken: set[str] = set()
        self._listed_at: int | None = None  # the folder's mtime when it was last listed
        # name -> (size, monotonic time it was first seen at that size), for images maybe still being written
        self._pending: dict[str, tuple[int, float]] = {}

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"source {self.name!r}: folder not found: {self.folder}")
        if not self.config.watch:
            count = len(self._new_images())
            if not count:
                raise SourceError(f"source {self.name!r}: no images ({' '.join(IMAGE_SUFFIXES)}) in {self.folder}")
            self.total_frames = min(count, self.config.max_frames or count)
            self.total_exact = True

    def _produce(self) -> None:
        self.connected.set()
        self.sessions += 1
        while not self._stop.is_set():
            for path in self._ready_images():
                if self._stop.is_set():
                    return
                self._taken.add(path.name)
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is None:
                    self.stats.decode_errors += 1
                    self._note(f"source {self.name!r}: cannot read image {path.name}; skipped")
                    continue
                self.size = (image.shape[1], image.shape[0])
                self._deliver(image, self._index / self.fps, path.name)
                if self._enough_frames:
                    return
            if not self.config.watch:
                return
            self._stop.wait(POLL_S)

    def _ready_images(self) -> list[Path]:
        images = self._new_images()
        if not self.config.watch:
            return images
        ready, now = [], time.monotonic()
        for path in images:
            try:
                size = path.stat().st_size
            except FileNotFoundError:  # removed since listed
                continue
            seen_size, since = self._pending.get(path.name, (None, now))
            if size != seen_size:
                self._pending[path.name] = (size, now)
            elif size and (_has_end_marker(path) or now - since > GIVE_UP_WAITING_S):
                ready.append(path)
                del self._pending[path.name]
        return ready

    def _new_images(self) -> list[Path]:
        """Images not taken yet. A watched folder is listed again only when its entries changed or
        an image is still being written, so a large snapshot folder costs one stat per poll."""
        try:
            listed_at = self.folder.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        if self.config.watch and listed_at == self._listed_at and not self._pending:
            return []
        self._listed_at = listed_at
        names = [entry.name for entry in _scan(self.folder)
                 if entry.name not in self._taken and entry.name.lower().endswith(IMAGE_SUFFIXES)]
        return [self.folder / name for name in sorted(names, key=_natural_key)]


def _scan(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as entries:
        return [entry for entry in entries if entry.is_file()]


def _has_end_marker(path: Path) -> bool:
    marker = _END_MARKERS.get(path.suffix.lower())
    if marker is None:
        return True
    try:
        with open(path, "rb") as file:
            file.seek(-len(marker), os.SEEK_END)
            return file.read() == marker
    except OSError:  # shorter than the marker, or gone
        return False


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]
