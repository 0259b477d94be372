"""The one interface every inference backend implements, and the factory that picks one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from engines.device import Device

BackendName = Literal["auto", "tensorrt", "onnxruntime", "torch"]

# ONNX element type names (ONNX Runtime's) and TensorProto numbers (the onnx package's) -> numpy dtypes: the
# ones a vision model's inputs and outputs use.
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
               "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int32)": np.int32,
               "tensor(int64)": np.int64, "tensor(bool)": np.bool_}
_ONNX_DTYPES = {1: np.float32, 10: np.float16, 11: np.float64, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64,
                9: np.bool_}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model as its file declares it."""

    name: str
    shape: tuple[int | None, ...]  # None: an axis the model leaves dynamic (batch, height, ...)
    dtype: np.dtype | None  # None: an element type these tables do not know

    @classmethod
    def of_ort(cls, arg) -> TensorSpec:
        """From an ``onnxruntime.NodeArg``, whose dynamic axes are names (or None) rather than sizes."""
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in (arg.shape or ()))
        dtype = _ORT_DTYPES.get(arg.type)
        return cls(arg.name, shape, np.dtype(dtype) if dtype is not None else None)

    @classmethod
    def of_onnx(cls, value_info) -> TensorSpec:
        """From an ``onnx.ValueInfoProto`` (a graph's input or output)."""
        tensor = value_info.type.tensor_type
        shape = tuple(d.dim_value if d.dim_value > 0 else None for d in tensor.shape.dim)
        dtype = _ONNX_DTYPES.get(tensor.elem_type)
        return cls(value_info.name, shape, np.dtype(dtype) if dtype is not None else None)


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


@runtime_checkable
class DeclaredModel(InferenceEngine, Protocol):
    """An engine of a model file that declares its ``inputs`` and ``outputs`` (shapes, dtypes) and its
    ``metadata`` (e.g. an ultralytics export's ``task`` and ``names``): ONNX Runtime, or an ONNX graph rebuilt
    in torch. Model adapters check a file and size their batches from these, whichever runs it."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    metadata: dict[str, str]


def onnx_backend(device: Device) -> str:
    """The runtime an ONNX model runs on: the configured one, or with "auto", ONNX Runtime on a CPU and where
    its CUDA build is installed, else torch (the model rebuilt as a torch module): a GPU with neither ONNX
    Runtime's CUDA build nor TensorRT is still used, not left idle while ONNX Runtime runs on the CPU."""
    if device.onnx_runtime != "auto":
        return device.onnx_runtime
    if not device.is_cuda:
        return "onnxruntime"
    from engines.onnxruntime_engine import has_cuda_provider

    return "onnxruntime" if has_cuda_provider() else "torch"


def resolve_backend(path: str | Path, device: Device, backend: BackendName = "auto") -> str:
    """The backend ``open_engine`` uses for ``path``: ``backend`` itself unless "auto". Then a TensorRT plan runs on
    TensorRT; an ONNX file on TensorRT where tensorrt and a GPU exist, else as ``onnx_backend`` decides; TorchScript
    on torch."""
    if backend != "auto":
        return backend
    suffix = Path(path).suffix.lower()
    if suffix in (".engine", ".plan"):
        return "tensorrt"
    if suffix != ".onnx":
        return "torch"
    if device.is_cuda:
        from engines.tensorrt_engine import tensorrt_status

        if tensorrt_status()[0]:
            return "tensorrt"
    return onnx_backend(device)


def open_engine(path: str | Path, device: Device, backend: BackendName = "auto", **options) -> InferenceEngine:
    """Loads ``path`` (.onnx, .engine/.plan, or a TorchScript .pt/.ts) on ``backend`` (``resolve_backend`` picks one
    for "auto"). With "torch" an ONNX file is rebuilt as a torch module (``engines/onnx_torch.py``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    suffix = path.suffix.lower()
    backend = resolve_backend(path, device, backend)
    if backend == "onnxruntime":
        from engines.onnxruntime_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(path, device, **options)
    if backend == "tensorrt":
        from engines.tensorrt_engine import TensorRTEngine

        return TensorRTEngine.from_file(path, device, **options)
    if backend == "torch":
        from engines.torch_engine import TorchEngine

        if suffix == ".onnx":
            return TorchEngine.from_onnx(path, device, **options)
        return TorchEngine.from_torchscript(path, device, **options)
    raise ValueError(f"unknown backend {backend!r}: expected auto, tensorrt, onnxruntime or torch")
