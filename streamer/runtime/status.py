"""A stream's status, taken from its source and counters whenever it is asked for: never a cached copy
that goes stale when frames stop."""

from __future__ import annotations

import time

from streamer.progress import StreamCounters
from streamer.records import StreamStatus
from streamer.sources import ThreadedSource


def stream_status(source: ThreadedSource, counters: StreamCounters) -> StreamStatus:
    stats = source.stats
    width, height = source.size or (None, None)
    now_wall, now = time.time(), time.monotonic()
    last_at = source.last_frame_at
    return StreamStatus(
        name=source.name, live=source.live, state=source.state, connected=source.connected.is_set(),
        decoded=stats.decoded, frames_out=counters.frames_out, dropped=stats.dropped, reconnects=stats.reconnects,
        stalls=stats.stalls, decode_errors=stats.decode_errors, skipped_damaged=stats.skipped_damaged,
        connect_failures=stats.connect_failures, fps_in=source.fps_in, fps_out=counters.fps_out,
        latency_ms=counters.mean_latency_ms, last_error=source.error or source.last_error, width=width,
        height=height, last_frame_time=source.last_frame_time,
        last_frame_age_s=None if last_at is None else round(now - last_at, 3), updated=now_wall,
        total_frames=source.total_frames,
    )
