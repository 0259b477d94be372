"""Discriminators for adversarial training (LSGAN): a global one on the whole face and a local one
on the box around the hole. Spectral normalisation keeps both stable without tuning."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def _patch_net(widths: list[int]) -> nn.Sequential:
    layers, cin = [], 3
    for w in widths:
        layers += [spectral_norm(nn.Conv2d(cin, w, 4, 2, 1)), nn.LeakyReLU(0.2)]
        cin = w
    layers.append(spectral_norm(nn.Conv2d(cin, 1, 3, 1, 1)))
    return nn.Sequential(*layers)


class GlobalDiscriminator(nn.Module):
    """PatchGAN over the whole (N, 3, S, S) face: one realism score per patch."""

    def __init__(self, base: int = 64):
        super().__init__()
        self.net = _patch_net([base, 2 * base, 4 * base, 4 * base])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class LocalDiscriminator(nn.Module):
    """PatchGAN over the hole's bounding box, resized to ``size``: judges the reconstruction up close."""

    def __init__(self, base: int = 64, size: int = 64):
        super().__init__()
        self.size = size
        self.net = _patch_net([base, 2 * base, 4 * base])

    def forward(self, image: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return self.net(crop_boxes(image, boxes, self.size))


def hole_boxes(hole: torch.Tensor, margin: int = 4) -> torch.Tensor:
    """(N, 4) integer boxes x0, y0, x1, y1 around each (N, 1, S, S) hole; the whole image if none."""
    n, _, height, width = hole.shape
    rows, cols = hole.amax(dim=3)[:, 0] > 0, hole.amax(dim=2)[:, 0] > 0
    boxes = torch.zeros(n, 4, dtype=torch.long)
    for i in range(n):
        ys, xs = torch.nonzero(rows[i]).flatten(), torch.nonzero(cols[i]).flatten()
        if len(ys) == 0:
            boxes[i] = torch.tensor([0, 0, width, height])
            continue
        boxes[i] = torch.tensor([max(int(xs[0]) - margin, 0), max(int(ys[0]) - margin, 0),
                                 min(int(xs[-1]) + 1 + margin, width), min(int(ys[-1]) + 1 + margin, height)])
    return boxes


def crop_boxes(image: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    crops = [F.interpolate(image[i:i + 1, :, y0:y1, x0:x1], size=(size, size), mode="bilinear", align_corners=False)
             for i, (x0, y0, x1, y1) in enumerate(boxes.tolist())]
    return torch.cat(crops)
