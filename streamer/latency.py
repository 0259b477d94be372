"""Per-frame latency by stage: the latest frames' figures, summarised as percentiles."""

from __future__ import annotations

from collections import defaultdict, deque

import numpy as np

KEEP = 20_000  # frames per stage: a long run reports its recent behaviour in bounded memory


class LatencyRecorder:
    def __init__(self, keep: int = KEEP):
        self._seconds: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=keep))

    def add(self, stage_seconds: dict[str, float]) -> None:
        for stage, seconds in stage_seconds.items():
            self._seconds[stage].append(seconds)

    def merge(self, other: LatencyRecorder) -> None:
        for stage, values in other._seconds.items():
            self._seconds[stage].extend(values)

    def summary_ms(self) -> dict[str, dict[str, float]]:
        """{stage: {p50, p95, p99, mean, frames}} in milliseconds, stages in the order first seen."""
        out = {}
        for stage, values in self._seconds.items():
            ms = 1000 * np.fromiter(values, float, len(values))
            p50, p95, p99 = np.percentile(ms, [50, 95, 99])
            out[stage] = {"p50": round(float(p50), 2), "p95": round(float(p95), 2), "p99": round(float(p99), 2),
                          "mean": round(float(ms.mean()), 2), "frames": len(ms)}
        return out
