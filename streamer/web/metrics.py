"""Per-stream counters in the Prometheus text exposition format."""

from __future__ import annotations

# (metric name, type, help, how to read it from a StreamStatus)
_METRICS = [
    ("streamer_source_up", "gauge", "1 while the source is connected and decoding", lambda s: int(s.connected)),
    ("streamer_frames_decoded_total", "counter", "frames decoded from the source", lambda s: s.decoded),
    ("streamer_frames_processed_total", "counter", "frames through the whole pipeline", lambda s: s.frames_out),
    ("streamer_frames_dropped_total", "counter", "live frames replaced by a newer one before processing",
     lambda s: s.dropped),
    ("streamer_reconnects_total", "counter", "successful reconnections", lambda s: s.reconnects),
    ("streamer_stalls_total", "counter", "times the stream stopped sending data", lambda s: s.stalls),
    ("streamer_decode_errors_total", "counter", "damage in the stream: packets that failed or decoded concealed",
     lambda s: s.decode_errors),
    ("streamer_frames_skipped_damaged_total", "counter", "frames dropped after damage, up to the next key frame",
     lambda s: s.skipped_damaged),
    ("streamer_connect_failures_total", "counter", "failed connection attempts", lambda s: s.connect_failures),
    ("streamer_fps_in", "gauge", "decoded frames per second, last 5 s", lambda s: round(s.fps_in, 3)),
    ("streamer_fps_out", "gauge", "processed frames per second, last 5 s", lambda s: round(s.fps_out, 3)),
    ("streamer_latency_seconds", "gauge", "mean time from decode to annotated output",
     lambda s: round(s.latency_ms / 1000, 4)),
]


def render(statuses) -> str:
    """The /metrics page for a list of StreamStatus. Stream names are validated config names: safe labels."""
    lines = []
    for name, kind, help_text, read in _METRICS:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for status in statuses:
            lines.append(f'{name}{{stream="{status.name}"}} {read(status)}')
    return "\n".join(lines) + "\n"
