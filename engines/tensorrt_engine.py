"""TensorRT backend: builds an FP16 engine from ONNX once, caches it, runs on device tensors.

TensorRT cannot be installed on the development machines (its wheels fetch
libraries from a vendor index), so this module is written against the
TensorRT 10 Python API and exercised wherever ``tensorrt`` and a GPU exist.
Everything that does not need TensorRT itself (the cache key, the profile
shapes) is plain Python and unit-tested everywhere.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.device import Device

log = logging.getLogger(__name__)


def tensorrt_status() -> tuple[bool, str]:
    """(available, detail): whether ``import tensorrt`` works, and its version or why not."""
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or a broken install raising OSError on its libraries
        return False, f"tensorrt is not importable ({type(exc).__name__}: {exc}); install the 'tensorrt' extra"
    return True, trt.__version__


@dataclass(frozen=True)
class BuildSpec:
    """What an engine is built for; every field goes into the cache key."""

    max_batch: int = 16
    opt_batch: int = 8
    fp16: bool = True
    workspace_mib: int = 2048

    def __post_init__(self) -> None:
        if not 1 <= self.opt_batch <= self.max_batch:
            raise ValueError(f"opt_batch must be in 1..max_batch ({self.max_batch}), got {self.opt_batch}")

    def profile_shapes(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) shapes for an input whose first axis is the dynamic batch."""
        if any(d < 0 for d in shape[1:]):
            raise ValueError(f"only the batch axis may be dynamic, got input shape {shape}")
        rest = tuple(shape[1:])
        return (1, *rest), (self.opt_batch, *rest), (self.max_batch, *rest)


def cache_key(model_bytes: bytes, gpu_name: str, compute_capability: str, trt_version: str, spec: BuildSpec) -> str:
    """Engines are only valid for the exact model, GPU, TensorRT version and build options."""
    digest = hashlib.sha256()
    digest.update(hashlib.sha256(model_bytes).digest())
    for part in (gpu_name, compute_capability, trt_version, repr(spec)):
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()[:32]


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "streamer" / "tensorrt"


class _TrtLogger:
    """Routes TensorRT's log into ``logging`` instead of stderr."""

    def __new__(cls):
        import tensorrt as trt

        class Logger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)

            def log(self, severity, msg):
                level = {
                    trt.ILogger.INTERNAL_ERROR: logging.ERROR,
                    trt.ILogger.ERROR: logging.ERROR,
                    trt.ILogger.WARNING: logging.WARNING,
                    trt.ILogger.INFO: logging.DEBUG,
                }.get(severity, logging.DEBUG)
                log.log(level, "tensorrt: %s", msg)

        return Logger()


def build_engine(onnx_path: Path, spec: BuildSpec, logger) -> bytes:
    import tensorrt as trt

    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, spec.workspace_mib << 20)
    if spec.fp16 and builder.platform_has_fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        profile.set_shape(tensor.name, *spec.profile_shapes(tuple(tensor.shape)))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    return bytes(serialized)


class TensorRTEngine:
    backend = "tensorrt"

    def __init__(self, serialized: bytes, device: Device, logger=None):
        import tensorrt as trt
        import torch

        if not device.is_cuda:
            raise ValueError("the TensorRT backend needs a CUDA device")
        self.device = device
        self._logger = logger or _TrtLogger()
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(serialized)
        if self.engine is None:
            raise RuntimeError("TensorRT could not deserialise the engine (built for another GPU or version?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = [n for n in names if is_input[n]]
        self.output_names = [n for n in names if not is_input[n]]
        self._torch_dtype = {
            n: getattr(torch, np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))).name) for n in names
        }

    @classmethod
    def from_file(cls, path: Path, device: Device, spec: BuildSpec | None = None, cache_dir: Path | None = None):
        """Loads a serialised engine (.engine/.plan) or builds one from ONNX through the cache."""
        import tensorrt as trt
        import torch

        logger = _TrtLogger()
        if path.suffix.lower() in (".engine", ".plan"):
            return cls(path.read_bytes(), device, logger)
        spec = spec or BuildSpec()
        props = torch.cuda.get_device_properties(device.index)
        key = cache_key(path.read_bytes(), props.name, f"{props.major}.{props.minor}", trt.__version__, spec)
        cached = (cache_dir or default_cache_dir()) / f"{path.stem}-{key}.engine"
        if cached.is_file():
            log.info("tensorrt: using cached engine %s", cached)
            return cls(cached.read_bytes(), device, logger)
        log.info("tensorrt: building %s engine for %s (one-off, may take minutes)", path.name, props.name)
        serialized = build_engine(path, spec, logger)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_bytes(serialized)
        tmp.replace(cached)  # atomic: a concurrent reader never sees half an engine
        return cls(serialized, device, logger)

    def run_device(self, inputs: dict, stream=None) -> list:
        """Runs on torch CUDA tensors and returns torch CUDA tensors: no host copies.

        Executes on the caller's CUDA stream (the current one by default) so it
        orders correctly with the caller's own torch work.
        """
        import torch

        stream = stream or torch.cuda.current_stream(self.device.index)
        keep_alive = []
        for name in self.input_names:
            tensor = inputs[name].to(self._torch_dtype[name]).contiguous()
            keep_alive.append(tensor)  # must outlive the asynchronous execution below
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        outputs = []
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            out = torch.empty(shape, dtype=self._torch_dtype[name], device=self.device.torch)
            self.context.set_tensor_address(name, out.data_ptr())
            outputs.append(out)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        self._last_inputs = keep_alive
        return outputs

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        tensors = {n: torch.from_numpy(np.ascontiguousarray(a)).to(self.device.torch) for n, a in inputs.items()}
        outputs = self.run_device(tensors)
        torch.cuda.current_stream(self.device.index).synchronize()
        return [o.float().cpu().numpy() for o in outputs]
