"""The research's dual-encoder generator: a vanilla-convolution encoder (image + hole mask) and a
partial-convolution encoder (image + valid mask) side by side, joined by an atrous (dilated)
block, and one decoder fed by both encoders' skips.

The vanilla encoder sees the hole as a channel and learns what lies around it; the partial one
never reads a hidden pixel. The dilated block widens the receptive field at the bottleneck so the
lower face is reasoned about from the eyes and the face outline.
"""

from __future__ import annotations

import torch
from torch import nn

from streamer.inpaint.nets.partial_conv import PartialConv2d, upsample2


def _conv(cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, dilation * (kernel // 2), dilation),
                         nn.InstanceNorm2d(cout, affine=True), nn.ELU())


class _AtrousBlock(nn.Module):
    """Residual dilated convolutions at rates 2, 4, 8 (and 2 again), at the bottleneck."""

    def __init__(self, channels: int, rates=(2, 4, 8, 2)):
        super().__init__()
        self.layers = nn.ModuleList([_conv(channels, channels, 3, 1, r) for r in rates])

    def forward(self, x):
        for layer in self.layers:
            x = x + layer(x)
        return x


class DualEncoderGenerator(nn.Module):
    """Input ``image`` (N, 3, S, S) in [-1, 1] and ``valid`` (N, 1, S, S) (1 = camera pixel);
    output (N, 3, S, S) in [-1, 1]. S must be a multiple of 8."""

    def __init__(self, base: int = 32, upsample: str = "nearest"):
        super().__init__()
        self.upsample = upsample
        b = base
        widths = [b, 2 * b, 4 * b, 8 * b]  # S, S/2, S/4, S/8
        self.vanilla = nn.ModuleList([_conv(4, widths[0], 5)] +
                                     [_conv(widths[i - 1], widths[i], 3, 2) for i in range(1, 4)])
        self.partial = nn.ModuleList([PartialConv2d(3, widths[0], 5, 1, 2)] +
                                     [PartialConv2d(widths[i - 1], widths[i], 3, 2, 1) for i in range(1, 4)])
        self.partial_act = nn.ELU()
        self.fuse = _conv(2 * widths[3], widths[3], 1)
        self.atrous = _AtrousBlock(widths[3])
        self.decoder = nn.ModuleList([_conv(widths[i + 1] + 2 * widths[i], widths[i]) for i in reversed(range(3))])
        self.refine = _conv(widths[0], widths[0])
        self.out = nn.Conv2d(widths[0], 3, 3, 1, 1)

    def forward(self, image: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        hole = 1.0 - valid
        v = torch.cat([image * valid, hole], 1)
        p, mask = image, valid
        skips = []
        for vanilla, partial in zip(self.vanilla, self.partial):
            v = vanilla(v)
            p, mask = partial(p, mask)
            p = self.partial_act(p)
            skips.append((v, p))
        x = self.atrous(self.fuse(torch.cat(skips.pop(), 1)))
        for block in self.decoder:
            v, p = skips.pop()
            x = upsample2(x, self.upsample)
            x = block(torch.cat([x, v, p], 1))
        return torch.tanh(self.out(self.refine(x)))
