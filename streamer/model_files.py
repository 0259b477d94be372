"""Loading a model file for a stage: finding it in a model-pack folder, opening it on the engine layer,
warming it up; whatever goes wrong is one line naming the file (``ModelError``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engines import Device
from engines.onnxruntime_engine import OnnxRuntimeEngine
from streamer.errors import ModelError


def resolve_model_file(path: Path, pattern: str) -> Path:
    """``path`` itself if a file, else the single file matching ``pattern`` inside the folder."""
    if path.is_file():
        return path
    matches = sorted(path.glob(pattern))
    if not matches:
        raise ModelError(f"no {pattern} file in model folder {path}")
    return matches[0]


def open_onnx_model(path: Path, device: Device, expected: str) -> OnnxRuntimeEngine:
    """An ONNX Runtime session of ``path`` with the stream's options; a file ONNX Runtime cannot load
    (garbage, truncated, an unknown operator) is a one-line ModelError naming it and ``expected``."""
    try:
        return OnnxRuntimeEngine(path, device)
    except Exception as exc:  # protobuf, graph and provider errors all mean "not a model we can run"
        raise ModelError(f"cannot load {path} ({one_line(exc)}); expected {expected}") from None


def warm_up(path: Path, run: Callable[[], object]) -> None:
    """Calls ``run`` (a dummy input through the model) so that the first real call does not pay the
    runtime's first-run set-up; a model that loads but cannot run is a one-line ModelError naming ``path``."""
    try:
        run()
    except ModelError:
        raise
    except Exception as exc:  # shapes the model's graph does not accept, an operator failing at run time
        raise ModelError(f"cannot run {path} ({one_line(exc)})") from None


def one_line(exc: Exception, limit: int = 200) -> str:
    """``exc``'s type and message on one line (runtimes' messages span lines), at most ``limit`` characters."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:limit]}"
