"""The one interface every inference backend implements, and the factory that picks one."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from engines.device import Device

BackendName = Literal["auto", "tensorrt", "onnxruntime", "torch"]


@runtime_checkable
class InferenceEngine(Protocol):
    """Runs one model on a batch.

    ``run`` takes named inputs (batch-first arrays) and returns the outputs in
    the model's output order, as host numpy arrays. ``backend`` and ``device``
    say where it runs, for ``doctor`` and the logs.
    """

    backend: str
    device: Device
    input_names: list[str]
    output_names: list[str]

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]: ...


def open_engine(path: str | Path, device: Device, backend: BackendName = "auto", **options) -> InferenceEngine:
    """Loads ``path`` (.onnx, .engine/.plan, or a TorchScript .pt/.ts) with the best backend for ``device``.

    With ``backend="auto"``: an ONNX file runs on TensorRT where tensorrt and a
    GPU exist, else on ONNX Runtime; TorchScript runs on torch.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    suffix = path.suffix.lower()
    if backend == "auto":
        if suffix in (".engine", ".plan"):
            backend = "tensorrt"
        elif suffix == ".onnx":
            from engines.tensorrt_engine import tensorrt_status

            backend = "tensorrt" if device.is_cuda and tensorrt_status()[0] else "onnxruntime"
        else:
            backend = "torch"
    if backend == "onnxruntime":
        from engines.onnxruntime_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(path, device, **options)
    if backend == "tensorrt":
        from engines.tensorrt_engine import TensorRTEngine

        return TensorRTEngine.from_file(path, device, **options)
    if backend == "torch":
        from engines.torch_engine import TorchEngine

        return TorchEngine.from_torchscript(path, device, **options)
    raise ValueError(f"unknown backend {backend!r}: expected auto, tensorrt, onnxruntime or torch")
