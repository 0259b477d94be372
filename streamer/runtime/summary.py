"""What a run reports when it ends: to the terminal, to ``run.json``, and to callers such as the bench."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunSummary:
    run_id: str = ""
    run_dir: Path | None = None
    frames: dict[str, int] = field(default_factory=dict)  # per stream: frames through the whole pipeline
    seconds: float = 0.0
    events: int = 0
    videos: list[Path] = field(default_factory=list)  # every file written, segments included
    outputs: list[str] = field(default_factory=list)  # one line per event sink: what it wrote or delivered
    errors: list[str] = field(default_factory=list)  # sources that failed, and a fatal output error
    fatal: str | None = None  # an output that could not be written (a full disk): the run stopped at it
    warnings: list[str] = field(default_factory=list)  # files with frames missing or skipped
    stopped_by: str | None = None  # the signal that stopped the run (SIGINT, SIGTERM)
    stage_ms: dict[str, float] = field(default_factory=dict)  # mean ms per item and stage
    inpainted: int = 0  # faces inpainted afresh
    reused: int = 0  # faces that kept their track's reconstruction
    store_path: Path | str | None = None  # a PostgreSQL store: its location, without the password
    dropped: dict[str, int] = field(default_factory=dict)  # per stream: frames replaced before analysis (live)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # per stage, all streams: p50/p95/p99

    @property
    def total_frames(self) -> int:
        return sum(self.frames.values())

    @property
    def fps(self) -> float:
        return self.total_frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def outcome(self) -> str:
        """failed (an output could not be written), incomplete (a source failed or a file lost frames),
        stopped (on request) or completed: the first that holds."""
        if self.fatal:
            return "failed"
        if self.errors or self.warnings:
            return "incomplete"
        return "stopped" if self.stopped_by else "completed"
