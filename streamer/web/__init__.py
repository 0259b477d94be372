"""The live view: an HTTP server with every stream's status, its annotated video (MJPEG) and /metrics."""

from streamer.records import StreamStatus
from streamer.web.server import LiveView, WebConfig

__all__ = ["LiveView", "StreamStatus", "WebConfig"]
