"""A training run's folder: a trained run is never started over by mistake."""

from __future__ import annotations

from pathlib import Path

from streamer.errors import ConfigError


def checked_run_folder(out: Path, resume: bool, init: Path | None, trained: str, outputs: tuple[str, ...]) -> Path:
    """``out``'s last.pt; a one-line ConfigError where ``--resume``, ``--init`` and what ``out`` holds disagree
    (``trained`` names what a run makes, ``outputs`` its files besides last.pt)."""
    if init and resume:
        raise ConfigError("--init: a resumed run goes on from its own last.pt; --init starts a new run")
    last = out / "last.pt"
    if resume and not last.is_file():
        raise ConfigError(f"--resume: no checkpoint at {last}")
    if not resume and (last.is_file() or any((out / name).is_file() for name in outputs)):
        raise ConfigError(f"--out: {out} holds a trained {trained} already; pass --resume to continue it, or "
                          f"choose a new folder")
    return last
