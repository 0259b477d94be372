"""The learned inpainters' networks, and the one contract every backend runs them under.

``InpaintingNet`` wraps a generator with the I/O every engine sees (torch, ONNX Runtime, TensorRT):

    image  (N, 3, S, S) float32 RGB in [0, 1]
    hole   (N, 1, S, S) float32, 1 = hidden pixel to synthesise
    ->     (N, 3, S, S) float32 RGB in [0, 1]: the camera's pixels outside the hole, the network's inside

Checkpoints are plain dicts of tensors and names (``torch.load(weights_only=True)``: no pickle of code).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from streamer.inpaint.nets.dual_encoder import DualEncoderGenerator
from streamer.inpaint.nets.partial_conv import UPSAMPLING, PConvUNet

ARCHITECTURES: dict[str, type[nn.Module]] = {"pconv_unet": PConvUNet, "dual_encoder": DualEncoderGenerator}
CHECKPOINT_FORMAT = "streamer-inpainter/1"
DEFAULT_UPSAMPLING = "bilinear"  # of a new training run: the shipped v3's (v1's nearest left an 8 px grid)


class InpaintingNet(nn.Module):
    def __init__(self, arch: str, base: int = 32, size: int = 128, upsample: str = "nearest"):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown inpainter architecture {arch!r}: expected one of {', '.join(ARCHITECTURES)}")
        if upsample not in UPSAMPLING:
            raise ValueError(f"unknown decoder upsampling {upsample!r}: expected one of {', '.join(UPSAMPLING)}")
        self.arch, self.base, self.size, self.upsample = arch, base, size, upsample
        self.generator = ARCHITECTURES[arch](base, upsample)

    def raw(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        """The generator's own output for every pixel, in [-1, 1] (what the losses look at)."""
        valid = 1.0 - hole
        return self.generator((image * 2.0 - 1.0) * valid, valid)

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        out = (self.raw(image, hole) + 1.0) * 0.5
        return image * (1.0 - hole) + out.clamp(0.0, 1.0) * hole

    def checkpoint(self, **meta) -> dict:
        return {"format": CHECKPOINT_FORMAT, "arch": self.arch, "base": self.base, "size": self.size,
                "upsample": self.upsample, "state_dict": self.state_dict(), "meta": meta}


def load_net(path: Path, map_location: str = "cpu") -> tuple[InpaintingNet, dict]:
    """The network of a checkpoint written by ``streamer train inpainter``, and its metadata; or of an ONNX
    ``streamer export inpainter`` wrote (its weights read back, checked against ONNX Runtime; no metadata)."""
    if Path(path).suffix.lower() == ".onnx":
        from streamer.inpaint.export import net_from_onnx  # here, not above: export builds on this module

        return net_from_onnx(Path(path)).to(map_location), {}
    data = torch.load(str(path), map_location=map_location, weights_only=True)
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a streamer inpainter checkpoint")
    generator = data.get("generator", data)  # training checkpoints hold the net under "generator"
    # Checkpoints written before the decoder's upsampling was a choice are nearest.
    net = InpaintingNet(generator["arch"], generator["base"], generator["size"], generator.get("upsample", "nearest"))
    net.load_state_dict(generator["state_dict"])
    return net.eval(), generator.get("meta", {})
