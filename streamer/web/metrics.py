"""Per-stream counters in the Prometheus text exposition format (version 0.0.4)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from streamer.records import StreamStatus

STATES = ("connecting", "decoding", "down", "ended", "failed")

# (metric name, type, help, how to read it from a StreamStatus; None omits the sample)
_METRICS: list[tuple[str, str, str, Callable[[StreamStatus], float | int | None]]] = [
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
    ("streamer_latency_seconds", "gauge", "mean time from decode to annotated output, latest 100 frames",
     lambda s: round(s.latency_ms / 1000, 4)),
    ("streamer_last_frame_age_seconds", "gauge", "seconds since the newest decoded frame (absent before the first)",
     lambda s: None if s.last_frame_age_s is None else round(s.last_frame_age_s, 3)),
]


def escape_label(value: str) -> str:
    """A label value as the exposition format wants it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{key}="{escape_label(value)}"' for key, value in labels.items()) + "}"


def _state_lines(statuses: list[StreamStatus]) -> list[str]:
    """streamer_source_state: one sample per known state, 1 on the current one (the Prometheus enum idiom)."""
    name = "streamer_source_state"
    lines = [f"# HELP {name} the source's state: 1 on the current one of {', '.join(STATES)}",
             f"# TYPE {name} gauge"]
    for status in statuses:
        states = STATES if status.state in STATES else (*STATES, status.state)
        for state in states:
            lines.append(f"{name}{_labels(stream=status.name, state=state)} {int(state == status.state)}")
    return lines


def render(statuses: Iterable[StreamStatus]) -> str:
    """The /metrics page for these statuses."""
    statuses = list(statuses)
    lines = []
    for name, kind, help_text, read in _METRICS:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for status in statuses:
            value = read(status)
            if value is not None:
                lines.append(f"{name}{_labels(stream=status.name)} {value}")
    lines.extend(_state_lines(statuses))
    return "\n".join(lines) + "\n"
