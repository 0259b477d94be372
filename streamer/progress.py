"""What a long run shows while it works: a progress bar for files, a status line for live streams."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from streamer.latency import LatencyRecorder
from streamer.rate import RateMeter


@dataclass
class StreamCounters:
    """Per-stream output figures behind the status line and the live view."""

    frames_out: int = 0
    latency_ms_sum: float = 0.0
    output_rate: RateMeter = field(default_factory=RateMeter)
    latency: LatencyRecorder = field(default_factory=LatencyRecorder)

    def frame_done(self, decoded_at: float, stage_s: dict[str, float] | None = None) -> None:
        now = time.monotonic()
        self.frames_out += 1
        self.latency_ms_sum += (now - decoded_at) * 1000
        self.output_rate.tick(now)
        self.latency.add({**(stage_s or {}), "total": now - decoded_at})

    @property
    def fps_out(self) -> float:
        return self.output_rate.rate

    @property
    def mean_latency_ms(self) -> float:
        return self.latency_ms_sum / self.frames_out if self.frames_out else 0.0


class ProgressReporter:
    """Redraws one line on a terminal (every 0.2 s); prints a line every 5 s when output is a log."""

    def __init__(self, stream=None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self._last = 0.0
        self._width = 0

    def update(self, sources, counters: dict[str, StreamCounters], force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < (0.2 if self.tty else 5.0):
            return
        self._last = now
        line = "  ".join(_describe(s, counters[s.name]) for s in sources)
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


def _describe(source, c: StreamCounters) -> str:
    stats = source.stats
    if source.state == "connecting":
        return f"{source.name}: connecting (attempt {stats.connect_failures + 1}), reconnects {stats.reconnects}"
    if source.live or not source.total_frames:
        return (
            f"{source.name}: in {source.fps_in:.1f} fps, out {c.fps_out:.1f} fps, "
            f"latency {c.mean_latency_ms:.0f} ms, drops {stats.dropped}, reconnects {stats.reconnects}, "
            f"stalls {stats.stalls}, decode errors {stats.decode_errors}"
        )
    total = source.total_frames
    done = min(c.frames_out, total)
    filled = int(20 * done / total)
    fps = c.fps_out
    eta = f"{(total - done) / fps:.0f}s" if fps > 0 else "?"
    return f"{source.name} [{'#' * filled}{'.' * (20 - filled)}] {done}/{total} {fps:.1f} fps ETA {eta}"
