"""Loading a model file for a stage: finding it in a model-pack folder, opening it on the engine layer,
warming it up; whatever goes wrong is one line naming the file (``ModelError``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from engines import Device, onnx_backend, open_engine
from streamer.errors import ModelError


def fingerprint(path: Path) -> str:
    """The model file's identity: the first 12 hex digits of its SHA-256 (as in an embedder's model_id, and in a
    detector's description, on which caches of aligned faces key: two runs' ``detector.onnx`` are two detectors)."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:12]


def resolve_model_file(path: Path, pattern: str) -> Path:
    """``path`` itself if a file, else the single file matching ``pattern`` inside the folder."""
    if path.is_file():
        return path
    matches = sorted(path.glob(pattern))
    if not matches:
        raise ModelError(f"no {pattern} file in model folder {path}")
    return matches[0]


def open_onnx_model(path: Path, device: Device, expected: str):
    """``path`` on the runtime ``device`` asks for (engines.onnx_backend): an ONNX Runtime session with the
    stream's options, or the graph rebuilt in torch (FP16 and CUDA graphs on a GPU as configured). Either
    declares its ``inputs``, ``outputs`` and ``metadata``. A file that cannot be loaded (garbage, truncated, an
    unknown operator) is a one-line ModelError naming it and ``expected``."""
    backend = onnx_backend(device)
    options = {"fp16": device.fp16, "cuda_graphs": device.cuda_graphs} if backend == "torch" else {}
    try:
        return open_engine(path, device, backend, **options)
    except Exception as exc:  # protobuf, graph and provider errors all mean "not a model we can run"
        raise ModelError(f"cannot load {path} on {backend} ({one_line(exc)}); expected {expected}") from None


def onnx_header(path: Path) -> tuple[dict[str, list], dict[str, str]]:
    """An ONNX file's inputs (name -> shape, a dimension a name or a size) and its metadata, read by ONNX Runtime
    with no graph optimisation: 0.1 s, where importing the onnx package costs 1.3 s (its ml_dtypes), paid
    again by every run and every restarted cluster worker. Raises what ONNX Runtime raises for a bad file."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return {i.name: list(i.shape) for i in session.get_inputs()}, dict(session.get_modelmeta().custom_metadata_map)


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
