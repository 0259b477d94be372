"""dlib's ResNet face descriptor as a torch module (``engines/dlib_file.py`` reads the file), so that it can be
trained: the mask-robust student of it (``streamer train embedder --teacher dlib``), exported to ONNX."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from engines.dlib_file import Block, Layer, conv_weights, fc_weights, read_network


class _ConvAffine(nn.Module):
    """dlib's con followed by its affine (a batch norm folded into a scale and shift; a student trains both)."""

    def __init__(self, con: Layer, affine: Layer):
        super().__init__()
        weights, biases, scale, shift = conv_weights(con, affine)
        _, rows, cols, stride_y, stride_x, pad_y, pad_x = con.numbers
        self.conv = nn.Conv2d(weights.shape[1], weights.shape[0], (rows, cols), (stride_y, stride_x), (pad_y, pad_x))
        with torch.no_grad():
            self.conv.weight.copy_(torch.from_numpy(weights.copy()))
            self.conv.bias.copy_(torch.from_numpy(biases.copy()))
        self.scale = nn.Parameter(torch.from_numpy(scale.copy()).view(1, -1, 1, 1))
        self.shift = nn.Parameter(torch.from_numpy(shift.copy()).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.scale + self.shift


def _padded_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b as dlib's add_prev adds them: each padded with zeros (after) to the larger's channels and size."""
    size = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:])]

    def pad(t: torch.Tensor) -> torch.Tensor:
        extra = [s - d for s, d in zip(size, t.shape[1:])]
        return F.pad(t, (0, extra[2], 0, extra[1], 0, extra[0])) if any(extra) else t

    return pad(a) + pad(b)


class _Block(nn.Module):
    def __init__(self, block: Block):
        super().__init__()
        self.first, self.second = _ConvAffine(*block.first), _ConvAffine(*block.second)
        pool = block.pool
        self.pool = nn.AvgPool2d(pool.numbers[:2], pool.numbers[2:4], pool.numbers[4:6]) if pool else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        body = self.second(F.relu(self.first(x)))
        return F.relu(_padded_sum(self.pool(x) if self.pool is not None else x, body))


class DlibFaceNet(nn.Module):
    """(n, 3, 150, 150) RGB pixel values 0-255 (dlib's face chip) -> (n, 128) dlib's face descriptor, as
    ``dlib.face_recognition_model_v1.compute_face_descriptor`` gives it (not normalised)."""

    def __init__(self, path: str | Path):
        super().__init__()
        net = read_network(Path(path))
        self.register_buffer("mean", torch.tensor(net.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.stem = _ConvAffine(*net.stem)
        pool = net.stem_pool.numbers
        self.stem_pool = nn.MaxPool2d(pool[:2], pool[2:4], pool[4:6])
        self.blocks = nn.Sequential(*[_Block(block) for block in net.blocks])
        weights = fc_weights(net.fc)
        self.fc = nn.Linear(weights.shape[0], weights.shape[1], bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(weights.T.copy()))

    def forward(self, rgb255: torch.Tensor) -> torch.Tensor:
        x = (rgb255 - self.mean) / 256.0
        x = self.stem_pool(F.relu(self.stem(x)))
        x = self.blocks(x)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))  # GlobalAveragePool in ONNX

    def weights_in_use_order(self) -> list[nn.Parameter]:
        return list(self.parameters())  # registered in forward order
