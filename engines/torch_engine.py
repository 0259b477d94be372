"""torch backend: eager or TorchScript modules, FP16 on GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.device import Device


class TorchEngine:
    backend = "torch"

    def __init__(self, module, device: Device, input_names: list[str], output_names: list[str], fp16: bool = False):
        import torch

        self.device = device
        # Half precision only pays (and is only well supported) on the GPU.
        self.dtype = torch.float16 if fp16 and device.is_cuda else torch.float32
        self.module = module.to(device.torch, dtype=self.dtype).eval()
        self.input_names = input_names
        self.output_names = output_names

    @classmethod
    def from_torchscript(cls, path: str | Path, device: Device, input_names=None, output_names=None, fp16=False):
        import torch

        # TorchScript archives hold no pickled Python objects, unlike torch.load of a .pt state.
        module = torch.jit.load(str(path), map_location="cpu")
        return cls(module, device, input_names or ["input"], output_names or ["output"], fp16=fp16)

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            args = [torch.from_numpy(np.ascontiguousarray(inputs[name])).to(self.device.torch, self.dtype)
                    for name in self.input_names]
            out = self.module(*args)
        outputs = out if isinstance(out, (list, tuple)) else [out]
        return [o.float().cpu().numpy() for o in outputs]
