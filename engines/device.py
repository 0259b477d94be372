"""Which device the models run on: a CUDA GPU when one is present, else the CPU."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DevicePreference = Literal["auto", "cpu", "cuda"]
OnnxRuntimeChoice = Literal["auto", "onnxruntime", "torch"]


class DeviceUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Device:
    kind: Literal["cpu", "cuda"]
    index: int = 0
    name: str = "cpu"
    reason: str = ""  # why this device was chosen
    cpu_threads: int = 0  # threads per model on the CPU; 0: the runtime's own default (all cores)
    # How the ONNX models run here (engines.base.onnx_backend decides "auto"), and torch's fast paths on a GPU.
    onnx_runtime: OnnxRuntimeChoice = "auto"
    fp16: bool = True
    cuda_graphs: bool = True

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    @property
    def torch(self) -> str:
        """The torch / ultralytics device string."""
        return f"cuda:{self.index}" if self.is_cuda else "cpu"

    def __str__(self) -> str:
        if self.is_cuda:
            return f"{self.torch} ({self.name})"
        threads = self.cpu_threads
        return f"cpu ({threads} thread{'s' if threads > 1 else ''})" if threads else "cpu"


def cuda_status() -> tuple[bool, str]:
    """(available, detail): whether torch sees a usable CUDA GPU, and its name or why not."""
    import glob
    import os

    # Importing torch takes seconds; without an NVIDIA device node there is nothing for it to find.
    if not glob.glob("/dev/nvidia[0-9]*") and not os.environ.get("CUDA_VISIBLE_DEVICES"):
        return False, "no NVIDIA GPU device (/dev/nvidia*) on this machine"
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a hard dependency
        return False, f"torch is not importable: {exc}"
    if not torch.cuda.is_available():
        built = torch.version.cuda
        why = "no CUDA GPU visible" if built else "this torch build has no CUDA support"
        return False, f"{why} (torch {torch.__version__}, built for CUDA {built or '-'})"
    return True, torch.cuda.get_device_name(0)


def select_device(preference: DevicePreference = "auto", cpu_threads: int = 0, *,
                  onnx_runtime: OnnxRuntimeChoice = "auto", fp16: bool = True, cuda_graphs: bool = True) -> Device:
    """``cpu_threads``: each model's threads on the CPU (0: the runtime's default); the GPU ignores it.
    ``onnx_runtime``, ``fp16``, ``cuda_graphs``: how the ONNX models run (see Device)."""
    how = {"onnx_runtime": onnx_runtime, "fp16": fp16, "cuda_graphs": cuda_graphs}
    if preference == "cpu":
        return Device("cpu", name="cpu", reason="configured", cpu_threads=cpu_threads, **how)
    available, detail = cuda_status()
    if available:
        return Device("cuda", 0, name=detail, reason="GPU present" if preference == "auto" else "configured", **how)
    if preference == "cuda":
        raise DeviceUnavailable(f"cuda was requested but is not available: {detail}")
    return Device("cpu", name="cpu", reason=detail, cpu_threads=cpu_threads, **how)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container limits), at least 1."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
