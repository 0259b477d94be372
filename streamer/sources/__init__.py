"""Video sources: each decodes in its own thread into a bounded buffer."""

from streamer.sources.buffers import FrameQueue, LatestFrameSlot
from streamer.sources.pyav_source import PyAVSource, SourceStats

__all__ = ["FrameQueue", "LatestFrameSlot", "PyAVSource", "SourceStats"]
