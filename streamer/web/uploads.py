"""Photos uploaded to the console: JPEG or PNG, their size read from the header before anything is decoded,
so a small file that would decode to a huge picture (a decompression bomb) is refused without the memory."""

from __future__ import annotations

import struct

import cv2
import numpy as np

MAX_PIXELS = 40_000_000  # a 40-megapixel photo is larger than any camera or phone's


class UploadRefused(ValueError):
    """Why an upload is not a usable photo (one line, for the operator), with the HTTP status to answer."""

    def __init__(self, message: str, status: int = 415):
        super().__init__(message)
        self.status = status


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's or PNG's header; UploadRefused for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg_size(data)
    raise UploadRefused("not a JPEG or PNG image")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            break
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        length = struct.unpack(">H", data[at + 2:at + 4])[0]
        # Start-of-frame markers (baseline, progressive, ...), not DHT (C4), JPG (C8) or DAC (CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and at + 9 <= len(data):
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        at += 2 + length
    raise UploadRefused("a damaged JPEG: no image size in its header")


def decode_photo(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The photo as a BGR image; UploadRefused when it is not a JPEG or PNG, too large, or does not decode."""
    width, height = image_size(data)
    if width * height > max_pixels:
        raise UploadRefused(f"{width}x{height} pixels: at most {max_pixels // 1_000_000} megapixels", 413)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise UploadRefused("the image does not decode (damaged or cut short)", 422)
    return image
