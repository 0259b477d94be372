"""What a long run shows while it works: a progress bar for files, a status line for live streams."""

from __future__ import annotations

import collections
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from streamer.latency import LatencyRecorder
from streamer.rate import RateMeter
from streamer.records import StreamStatus

RECENT_FRAMES = 100


@dataclass
class StreamCounters:
    """Per-stream output figures behind the status line and the live view."""

    frames_out: int = 0
    output_rate: RateMeter = field(default_factory=RateMeter)
    latency: LatencyRecorder = field(default_factory=LatencyRecorder)  # per stage, for the run's percentiles
    # The latest frames' decode-to-output latency: what the status shows is how the stream does now.
    recent_latency_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=RECENT_FRAMES))

    def frame_done(self, decoded_at: float, stage_s: dict[str, float] | None = None) -> None:
        now = time.monotonic()
        self.frames_out += 1
        self.recent_latency_ms.append((now - decoded_at) * 1000)
        self.output_rate.tick(now)
        self.latency.add({**(stage_s or {}), "total": now - decoded_at})

    @property
    def fps_out(self) -> float:
        return self.output_rate.rate

    @property
    def mean_latency_ms(self) -> float:
        """Over the latest ``RECENT_FRAMES`` frames (0 before the first)."""
        recent = list(self.recent_latency_ms)
        return sum(recent) / len(recent) if recent else 0.0


class ProgressReporter:
    """Redraws one line on a terminal (every 0.2 s); prints a line every 5 s when output is a log."""

    def __init__(self, stream=None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self._last = 0.0
        self._width = 0

    def update(self, statuses: Callable[[], list[StreamStatus]], force: bool = False) -> None:
        """Redraws the line if it is due; ``statuses`` is only called then."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < (0.2 if self.tty else 5.0):
            return
        self._last = now
        line = "  ".join(_describe(s) for s in statuses())
        if self.tty:
            pad = max(self._width - len(line), 0)
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()


def _describe(s: StreamStatus) -> str:
    if s.state == "connecting":
        return f"{s.name}: connecting"
    if s.state == "down":
        since = f", last frame {s.last_frame_age_s:.0f} s ago" if s.last_frame_age_s is not None else ", no frame yet"
        return f"{s.name}: DOWN, retrying ({s.connect_failures} failed attempts, {s.reconnects} reconnects){since}"
    if s.live or not s.total_frames:
        return (
            f"{s.name}: {s.state}, in {s.fps_in:.1f} fps, out {s.fps_out:.1f} fps, latency {s.latency_ms:.0f} ms, "
            f"drops {s.dropped}, reconnects {s.reconnects}, stalls {s.stalls}, decode errors {s.decode_errors}"
        )
    total = s.total_frames
    done = min(s.frames_out, total)
    filled = int(20 * done / total)
    eta = f"{(total - done) / s.fps_out:.0f}s" if s.fps_out > 0 else "?"
    return f"{s.name} [{'#' * filled}{'.' * (20 - filled)}] {done}/{total} {s.fps_out:.1f} fps ETA {eta}"
