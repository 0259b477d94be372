"""torch backend: eager modules, TorchScript archives or ONNX graphs rebuilt in torch; FP16 and CUDA graphs
on a GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.base import TensorSpec
from engines.device import Device


class TorchEngine:
    """``inputs``, ``outputs`` and ``metadata`` are what the model file declares where it declares them (an
    ONNX graph); a module built in Python declares nothing."""

    backend = "torch"
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    metadata: dict[str, str] = {}

    def __init__(self, module, device: Device, input_names: list[str], output_names: list[str], fp16: bool = False,
                 cuda_graphs: bool = False):
        import torch

        self.device = device
        # Half precision only pays (and is only well supported) on the GPU.
        self.dtype = torch.float16 if fp16 and device.is_cuda else torch.float32
        self.module = module.to(device.torch, dtype=self.dtype).eval()
        self.input_names = input_names
        self.output_names = output_names
        # A small network at a small batch is launch-bound: replaying a captured graph removes the
        # per-kernel launch cost. One graph per power-of-two batch; a batch is padded up to its bucket.
        self.cuda_graphs = cuda_graphs and device.is_cuda
        self._graphs: dict[tuple, tuple] = {}

    @classmethod
    def from_torchscript(cls, path: str | Path, device: Device, input_names=None, output_names=None, fp16=False):
        import torch

        # TorchScript archives hold no pickled Python objects, unlike torch.load of a .pt state.
        module = torch.jit.load(str(path), map_location="cpu")
        return cls(module, device, input_names or ["input"], output_names or ["output"], fp16=fp16)

    @classmethod
    def from_onnx(cls, path: str | Path, device: Device, fp16: bool = False, cuda_graphs: bool = False):
        """An ONNX graph rebuilt as a torch module. A graph exported at a fixed batch runs at any batch here, so
        its declared batch axis is reported as dynamic."""
        from engines.onnx_torch import OnnxGraph

        graph = OnnxGraph(path)
        engine = cls(graph, device, graph.input_names, graph.output_names, fp16=fp16, cuda_graphs=cuda_graphs)
        free = _free_batch if graph.batch_is_free else (lambda spec: spec)
        engine.inputs = [free(spec) for spec in graph.declared_inputs]
        engine.outputs = [free(spec) for spec in graph.declared_outputs]
        engine.metadata = graph.metadata
        return engine

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            args = [torch.from_numpy(np.ascontiguousarray(inputs[name])).to(self.device.torch, self.dtype)
                    for name in self.input_names]
            outputs = self._replay(args) if self.cuda_graphs else _as_list(self.module(*args))
            return [(o.float() if o.is_floating_point() else o).cpu().numpy() for o in outputs]

    def _replay(self, args: list) -> list:
        import torch

        n = args[0].shape[0]
        bucket = 1 << max(n - 1, 0).bit_length()
        padded = [torch.cat([a, a[-1:].expand(bucket - n, *a.shape[1:])]) if bucket > n else a for a in args]
        key = tuple(tuple(a.shape) for a in padded)
        if key not in self._graphs:
            self._graphs[key] = self._capture(padded)
        graph, static_inputs, static_outputs = self._graphs[key]
        for static, value in zip(static_inputs, padded):
            static.copy_(value)
        graph.replay()
        if bucket == n:
            return static_outputs
        # Only outputs with a batch axis were padded (SCRFD's, one row per anchor, have none).
        return [o[:n] if o.dim() and o.shape[0] == bucket else o for o in static_outputs]

    def _capture(self, example: list) -> tuple:
        import torch

        static_inputs = [a.clone() for a in example]
        side = torch.cuda.Stream(self.device.torch)
        side.wait_stream(torch.cuda.current_stream(self.device.torch))
        with torch.cuda.stream(side):  # warm-up outside the graph: cuDNN picks its algorithms here
            for _ in range(3):
                self.module(*static_inputs)
        torch.cuda.current_stream(self.device.torch).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # The detector captures on its own thread while the per-face models run on another: only this thread's
        # calls must keep off what a capture forbids.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            static_outputs = _as_list(self.module(*static_inputs))
        return graph, static_inputs, static_outputs


def _free_batch(spec: TensorSpec) -> TensorSpec:
    return TensorSpec(spec.name, (None, *spec.shape[1:]), spec.dtype) if spec.shape else spec


def _as_list(out) -> list:
    return list(out) if isinstance(out, (list, tuple)) else [out]
