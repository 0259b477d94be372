"""The learning-rate schedule every training recipe here uses."""

from __future__ import annotations

import math


def warmup_cosine(peak: float, progress: float) -> float:
    """Linear warm-up over the first 2% of training, then cosine to 5% of ``peak``; ``progress`` in [0, 1]."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < 0.02:
        return peak * max(progress / 0.02, 0.05)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (progress - 0.02) / 0.98)))
