"""ONNX Runtime backend: CUDA execution provider on a GPU, CPU otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.base import TensorSpec
from engines.device import Device


def has_cuda_provider() -> bool:
    """Whether this onnxruntime build runs models on a CUDA GPU (the onnxruntime-gpu wheel)."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def ort_providers(device: Device) -> list[str]:
    """Execution providers for ``device``, best first, limited to what this onnxruntime build has."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.is_cuda else ["CPUExecutionProvider"]
    return [p for p in wanted if p in available] or ["CPUExecutionProvider"]


def session_options(device: Device, threads: int = 0):
    """Options for every ONNX Runtime session of the stream: ``threads`` (else the device's
    cpu_threads, else ONNX Runtime's default) intra-op threads. On a CPU the stages share a few cores
    (several sessions, decoding threads, OpenCV): a session's threads must not spin-wait for work
    after each run, which on 2 cores doubled the other stages' time."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    threads = threads or (0 if device.is_cuda else device.cpu_threads)
    if threads:
        options.intra_op_num_threads = threads
    if not device.is_cuda:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxRuntimeEngine:
    """One ONNX Runtime session with the stream's options.

    Besides the names, it says what the model declares: ``inputs`` and ``outputs`` (shapes, dtypes)
    and ``metadata`` (the model's custom metadata, e.g. an ultralytics export's ``task`` and ``names``),
    so model adapters check a file and size their batches without opening the session themselves.
    """

    backend = "onnxruntime"

    def __init__(self, path: str | Path, device: Device, threads: int = 0):
        import onnxruntime as ort

        self.device = device
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), sess_options=session_options(device, threads),
                                            providers=ort_providers(device))
        self.inputs = [TensorSpec.of_ort(i) for i in self.session.get_inputs()]
        self.outputs = [TensorSpec.of_ort(o) for o in self.session.get_outputs()]
        self.input_names = [i.name for i in self.inputs]
        self.output_names = [o.name for o in self.outputs]
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.output_names, inputs)
