"""The partial-convolution U-Net of Liu et al. 2018 ("Image Inpainting for Irregular Holes Using
Partial Convolutions"): every convolution sees only valid pixels, re-normalised by how many it saw,
and passes on an updated mask (a pixel is valid once any input under its window was).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PartialConv2d(nn.Conv2d):
    """A partial convolution with a multi-channel mask (1 = valid), as in NVIDIA's reference code.

    ``forward(x, mask)`` with ``mask`` of x's shape (or one channel, broadcast) returns
    ``(out, new_mask)``, new_mask being one channel: 1 where the window saw any valid input.
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if mask.shape[1] != x.shape[1]:
            mask = mask.expand(-1, x.shape[1], -1, -1)
        window = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        # Counting valid inputs in float32 even under mixed precision: bf16 cannot count past 256.
        with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
            ones = torch.ones(1, self.in_channels, *self.kernel_size, dtype=torch.float32, device=x.device)
            seen = F.conv2d(mask.float(), ones, None, self.stride, self.padding, self.dilation)
            new_mask = (seen > 0).float()
            ratio = (window / seen.clamp(min=1.0) * new_mask).to(x.dtype)
            new_mask = new_mask.to(x.dtype)
        raw = F.conv2d(x * mask, self.weight, None, self.stride, self.padding, self.dilation, self.groups)
        out = raw * ratio
        if self.bias is not None:
            out = (out + self.bias.view(1, -1, 1, 1)) * new_mask
        return out, new_mask


class _PBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, norm: bool, act: str | None):
        super().__init__()
        self.conv = PartialConv2d(cin, cout, kernel, stride, kernel // 2, bias=not norm)
        self.norm = nn.BatchNorm2d(cout) if norm else nn.Identity()
        self.act = {"relu": nn.ReLU(), "leaky": nn.LeakyReLU(0.2), None: nn.Identity()}[act]

    def forward(self, x, mask):
        x, mask = self.conv(x, mask)
        return self.act(self.norm(x)), mask


UPSAMPLING = ("nearest", "bilinear")


def upsample2(x: torch.Tensor, mode: str) -> torch.Tensor:
    """Doubles a decoder's feature map. Nearest (Liu et al.'s, and v1's) copies each value into a 2x2 block,
    which three levels up is an 8 px grid that the decoder's 3x3 convolutions do not smooth inside a large
    hole; bilinear leaves no such grid."""
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class PConvUNet(nn.Module):
    """Input ``image`` (N, 3, S, S) in [-1, 1] and ``valid`` (N, 1, S, S) (1 = camera pixel);
    output (N, 3, S, S) in [-1, 1]. S must be a multiple of 32 (five halvings)."""

    def __init__(self, base: int = 32, upsample: str = "nearest"):
        super().__init__()
        self.upsample = upsample
        b = base
        widths = [b, 2 * b, 4 * b, 8 * b, 8 * b]
        kernels = [7, 5, 5, 3, 3]
        self.encoder = nn.ModuleList()
        cin = 3
        for i, (w, k) in enumerate(zip(widths, kernels)):
            self.encoder.append(_PBlock(cin, w, k, 2, norm=i > 0, act="relu"))
            cin = w
        self.decoder = nn.ModuleList()
        skips = [3] + widths[:-1]  # what each decoder level concatenates: the input, then the encoder levels
        for level in reversed(range(len(widths))):
            cout = 3 if level == 0 else widths[level - 1]
            last = level == 0
            self.decoder.append(_PBlock(cin + skips[level], cout, 3, 1, norm=not last, act=None if last else "leaky"))
            cin = cout

    def forward(self, image: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        skips = [(image, valid)]
        x, mask = image, valid
        for block in self.encoder:
            x, mask = block(x, mask)
            skips.append((x, mask))
        skips.pop()  # the bottleneck is x itself
        for block in self.decoder:
            skip, skip_mask = skips.pop()
            x = upsample2(x, self.upsample)
            mask = F.interpolate(mask, scale_factor=2.0, mode="nearest")  # a mask stays 0/1
            masks = torch.cat([mask.expand(-1, x.shape[1], -1, -1), skip_mask.expand(-1, skip.shape[1], -1, -1)], 1)
            x, mask = block(torch.cat([x, skip], 1), masks)
        return torch.tanh(x)
