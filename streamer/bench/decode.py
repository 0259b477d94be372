"""The decode ceiling: a bare PyAV loop against streamer's sources (thread, queue, stats) on the same file."""

from __future__ import annotations

import time
from pathlib import Path

import av

from streamer.config import SourceConfig
from streamer.sources import PyAVSource


def bare_pyav(path: Path, limit: int) -> float:
    """Frames per second of the simplest decode loop to BGR arrays, what any pipeline starts from."""
    started, n = time.perf_counter(), 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frame.to_ndarray(format="bgr24")
            n += 1
            if n >= limit:
                break
    return n / (time.perf_counter() - started)


def streamer_sources(path: Path, limit: int, count: int = 1) -> float:
    """Total frames per second out of ``count`` streamer sources decoding ``path`` at once."""
    sources = [PyAVSource(SourceConfig(name=f"s{i}", uri=str(path), max_frames=limit)) for i in range(count)]
    started = time.perf_counter()
    for source in sources:
        source.open()
        source.start()
    n = 0
    while not all(s.exhausted for s in sources):
        for source in sources:
            if source.read(0.01) is not None:
                n += 1
    elapsed = time.perf_counter() - started
    for source in sources:
        source.stop()
    return n / elapsed


def decode_ceiling(path: Path, frames: int, stream_counts: list[int], repeats: int = 7) -> dict:
    """Bare decode and streamer's ingest alternated ``repeats`` times (medians), then N streams at once."""
    bare, ours = [], []
    for _ in range(repeats):
        bare.append(bare_pyav(path, frames))
        ours.append(streamer_sources(path, frames))
    bare_fps, ours_fps = sorted(bare)[len(bare) // 2], sorted(ours)[len(ours) // 2]
    return {
        "bare_fps": round(bare_fps, 1),
        "source_fps": round(ours_fps, 1),
        "overhead_pct": round(100 * (1 - ours_fps / bare_fps), 1),
        "streams": {str(n): round(streamer_sources(path, frames, n), 1) for n in stream_counts},
    }
