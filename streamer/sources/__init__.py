"""Video sources: each produces frames in its own thread into a bounded buffer."""

from __future__ import annotations

import threading

from streamer.config import SourceConfig
from streamer.sources.base import SourceStats, ThreadedSource
from streamer.sources.buffers import FrameQueue, LatestFrameSlot
from streamer.sources.image_folder import ImageFolderSource
from streamer.sources.pyav_source import PyAVSource


def make_source(
    config: SourceConfig, queue_frames: int = 8, frame_ready: threading.Event | None = None
) -> ThreadedSource:
    """The source for what ``config.uri`` names: a folder of images, or anything FFmpeg opens."""
    kind = ImageFolderSource if config.kind == "folder" else PyAVSource
    return kind(config, queue_frames, frame_ready)


__all__ = ["FrameQueue", "ImageFolderSource", "LatestFrameSlot", "PyAVSource", "SourceStats", "ThreadedSource",
           "make_source"]
