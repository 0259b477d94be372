"""The newest annotated frame of each stream, handed over by the pipeline and read by any number of viewers."""

from __future__ import annotations

import threading

import cv2
import numpy as np


class FrameHolder:
    """One stream's latest frame. Encoded to JPEG once per frame, and only when someone watches."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._image: np.ndarray | None = None
        self._sequence = 0  # 0: no frame yet
        self._jpeg: tuple[int, bytes] | None = None

    @property
    def sequence(self) -> int:
        with self._cond:
            return self._sequence

    def put(self, image: np.ndarray) -> None:
        with self._cond:
            self._image, self._sequence = image, self._sequence + 1
            self._cond.notify_all()

    def wait_newer(self, sequence: int, timeout: float) -> None:
        """Returns when a frame newer than ``sequence`` is here, or after ``timeout`` s, or on ``wake``."""
        with self._cond:
            if self._sequence == sequence:
                self._cond.wait(timeout)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def jpeg(self, quality: int) -> tuple[int, bytes | None]:
        """(sequence, JPEG bytes) of the newest frame; (0, None) before the first one."""
        with self._cond:
            image, sequence, cached = self._image, self._sequence, self._jpeg
        if image is None:
            return 0, None
        if cached and cached[0] == sequence:
            return cached
        # Encoded outside the lock: publishing never waits for a viewer's encode.
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            return 0, None
        encoded = (sequence, data.tobytes())
        with self._cond:
            if self._sequence == sequence:
                self._jpeg = encoded
        return encoded


class FrameHolders:
    """Every stream's holder, created on first use so streams may appear while the run goes on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: dict[str, FrameHolder] = {}

    def get(self, stream: str) -> FrameHolder:
        with self._lock:
            holder = self._holders.get(stream)
            if holder is None:
                holder = self._holders[stream] = FrameHolder()
            return holder

    def wake_all(self) -> None:
        with self._lock:
            holders = list(self._holders.values())
        for holder in holders:
            holder.wake()
