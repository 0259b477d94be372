"""The picture a viewer gets instead of video when a stream has none to show: which stream, in what state,
and when its last frame came. Without it a camera that is down looks like a black box that might be loading."""

from __future__ import annotations

import time

import cv2
import numpy as np

from streamer.records import StreamStatus

SIZE = (640, 360)  # width, height
_BACKGROUND = (48, 48, 48)
_STATE_WORDS = {
    "connecting": "connecting",
    "decoding": "decoding",
    "down": "down: reconnecting",
    "ended": "ended",
    "failed": "failed",
}
_STATE_COLOURS = {"down": (80, 80, 230), "failed": (80, 80, 230), "decoding": (110, 200, 110)}  # BGR
_MAX_NAME = 36  # characters that fit the width at the name's scale


def state_words(state: str) -> str:
    return _STATE_WORDS.get(state, state)


def last_frame_words(status: StreamStatus, now: float | None = None) -> str:
    """"last frame 17:02:03 UTC (41 s ago)" or "no frame yet"."""
    if status.last_frame_time is None:
        return "no frame yet"
    now = time.time() if now is None else now
    clock = time.strftime("%H:%M:%S", time.gmtime(status.last_frame_time))
    age = max(0, round(now - status.last_frame_time))
    return f"last frame {clock} UTC ({age} s ago)"


def _printable(name: str) -> str:
    # putText only draws; non-ASCII would come out as '?' anyway, and a long name is cut to fit.
    text = "".join(c if " " <= c <= "~" else "?" for c in name)
    return text if len(text) <= _MAX_NAME else text[: _MAX_NAME - 3] + "..."


def draw(status: StreamStatus, now: float | None = None) -> np.ndarray:
    """A dark grey BGR picture with the stream's name, its state in words and its last frame's time."""
    width, height = SIZE
    image = np.full((height, width, 3), _BACKGROUND, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(image, _printable(status.name), (32, 120), font, 1.1, (235, 235, 235), 2, cv2.LINE_AA)
    colour = _STATE_COLOURS.get(status.state, (200, 200, 200))
    cv2.putText(image, state_words(status.state), (32, 190), font, 1.0, colour, 2, cv2.LINE_AA)
    cv2.putText(image, last_frame_words(status, now), (32, 250), font, 0.7, (190, 190, 190), 1, cv2.LINE_AA)
    return image


def jpeg(status: StreamStatus, quality: int, now: float | None = None) -> bytes:
    ok, data = cv2.imencode(".jpg", draw(status, now), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode the placeholder picture")
    return data.tobytes()
