"""The inpainter's losses: hole and valid L1, perceptual and style (Gram), total variation,
adversarial (LSGAN), and identity.

Perceptual and style features: pretrained VGG weights cannot be downloaded here, so the features
come from a face embedder the project can load (an ArcFace-type ONNX model, rebuilt in torch by
``engines.onnx_torch``): its last activation at each of three resolutions. The identity term is the
cosine distance between that embedder's embeddings of the reconstruction and of the original.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engines.onnx_torch import OnnxConvNet


@dataclass(frozen=True)
class LossWeights:
    valid: float = 1.0
    hole: float = 6.0
    # Liu et al.'s weights for L1 and TV; the feature terms rescaled for the face embedder's features,
    # so that each weighs about as much as the hole L1 on an early, blurry reconstruction.
    perceptual: float = 0.5
    style: float = 500.0
    tv: float = 0.1
    identity: float = 0.3
    adversarial: float = 0.02

    def as_dict(self) -> dict:
        return asdict(self)


class FaceFeatures(nn.Module):
    """A frozen face embedder: features at three resolutions and the L2-normalised embedding.

    Takes (N, 3, S, S) RGB in [0, 1] in the ArcFace layout; resizes to the embedder's 112 px and
    normalises as insightface does for ArcFace models ((x - 127.5) / 127.5).
    """

    def __init__(self, onnx_path: Path, input_size: int = 112):
        super().__init__()
        self.net = OnnxConvNet(onnx_path).eval()
        self.input_size = input_size
        self.layers = _last_per_resolution(self.net, input_size, count=3)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if image.shape[-1] != self.input_size:
            image = F.interpolate(image, size=(self.input_size, self.input_size), mode="bilinear",
                                  align_corners=False, antialias=False)
        embedding, features = self.net.features((image * 255.0 - 127.5) / 127.5, self.layers)
        return F.normalize(embedding.flatten(1).float(), dim=1), features


def _last_per_resolution(net: OnnxConvNet, size: int, count: int) -> list[str]:
    with torch.no_grad():
        _, values = net.features(torch.zeros(1, 3, size, size), net.node_outputs)
    last: dict[int, str] = {}
    for name, value in zip(net.node_outputs, values):
        if value.dim() == 4 and value.shape[-1] > 1:
            last[value.shape[-1]] = name
    return [last[s] for s in sorted(last, reverse=True)[:count]]


def gram(features: torch.Tensor) -> torch.Tensor:
    n, c, h, w = features.shape
    flat = features.float().reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def total_variation(image: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels where both lie in ``region`` (the hole grown by 1 px)."""
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs() * region[..., :, 1:] * region[..., :, :-1]
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs() * region[..., 1:, :] * region[..., :-1, :]
    return (dx.sum() + dy.sum()) / region.sum().clamp(min=1.0) / image.shape[1]


def generator_losses(output: torch.Tensor, composite: torch.Tensor, target: torch.Tensor, hole: torch.Tensor,
                     features: FaceFeatures | None, weights: LossWeights) -> dict[str, torch.Tensor]:
    """Every term, unweighted, in [0, 1] image units; ``output`` is the raw generator output mapped to
    [0, 1], ``composite`` the output inside the hole and the camera's pixels outside."""
    valid = 1.0 - hole
    terms = {
        "valid": (valid * (output - target)).abs().mean(),
        "hole": (hole * (output - target)).abs().mean(),
        "tv": total_variation(composite, (F.max_pool2d(hole, 3, 1, 1) > 0).float()),
    }
    if features is not None:
        target_embedding, target_features = features(target)
        target_embedding, target_features = target_embedding.detach(), [f.detach() for f in target_features]
        out_embedding, out_features = features(output)
        comp_embedding, comp_features = features(composite)
        terms["perceptual"] = sum((o.float() - t.float()).abs().mean() + (c.float() - t.float()).abs().mean()
                                  for o, c, t in zip(out_features, comp_features, target_features))
        terms["style"] = sum((gram(o) - gram(t)).abs().mean() + (gram(c) - gram(t)).abs().mean()
                             for o, c, t in zip(out_features, comp_features, target_features))
        terms["identity"] = (1.0 - (comp_embedding * target_embedding).sum(dim=1)).mean()
    return terms


def weighted_total(terms: dict[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
    factors = weights.as_dict()
    return sum(factors[name] * value for name, value in terms.items())


def lsgan_real(scores: torch.Tensor) -> torch.Tensor:
    return ((scores.float() - 1.0) ** 2).mean()


def lsgan_fake(scores: torch.Tensor) -> torch.Tensor:
    return (scores.float() ** 2).mean()
