"""The offline default embedder: a classical LBP-histogram face descriptor (Ahonen et al. 2006).

Uniform LBP codes of the aligned grey face, histogrammed over a grid of
cells, square-rooted (Hellinger) and L2-normalised, so cosine similarity
works as with learned embeddings. Needs no weights; it recognises the same
photo under small changes, not a person across photos. Use an ArcFace model
(``embedder.backend: arcface``) for real re-identification.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from engines import Device
from streamer.config_base import StrictModel


class LbpHistogramConfig(StrictModel):
    backend: Literal["lbp_histogram"] = "lbp_histogram"
    grid: int = Field(6, ge=2, le=16, description="cells per side")
    radius: int = Field(2, ge=1, le=3)
    blur_sigma: float = Field(1.5, ge=0, le=5, description="smoothing before LBP; without it, sensor noise "
                              "moves the descriptor more than a change of person does")


class LbpHistogramEmbedder:
    def __init__(self, config: LbpHistogramConfig, device: Device):
        self._grid = config.grid
        self._radius = config.radius
        self._points = 8
        self._blur = config.blur_sigma
        # Raw LBP-histogram cosines of different faces sit high (0.92-0.97) but below re-captures of the
        # same face (>= 0.98 after rescale, JPEG, 1.5 px shift): see tests/test_stages.py.
        self.default_threshold = 0.975
        self.model_id = f"lbp_histogram:g{config.grid}r{config.radius}b{config.blur_sigma}"
        self.description = f"LBP-histogram descriptor, {config.grid}x{config.grid} cells (classical, no weights; CPU)"

    def embed(self, crops: np.ndarray) -> np.ndarray:
        from skimage.feature import local_binary_pattern

        from streamer.embed import l2_normalise

        bins = self._points + 2  # uniform patterns + one bin for the rest
        out = []
        for crop in crops:
            gray = cv2.cvtColor(cv2.resize(crop, (112, 112), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
            if self._blur:
                gray = cv2.GaussianBlur(gray, (0, 0), self._blur)
            codes = local_binary_pattern(gray, self._points, self._radius, method="uniform").astype(np.int32)
            cell = 112 // self._grid
            codes = codes[: cell * self._grid, : cell * self._grid]
            cells = codes.reshape(self._grid, cell, self._grid, cell).transpose(0, 2, 1, 3).reshape(-1, cell * cell)
            hist = np.stack([np.bincount(c, minlength=bins) for c in cells]).astype(np.float32)
            out.append(np.sqrt(hist.ravel() / (cell * cell)))
        if not out:
            return np.zeros((0, self._grid * self._grid * bins), np.float32)
        return l2_normalise(np.stack(out))
