"""The offline default embedder: a classical LBP-histogram face descriptor (Ahonen et al. 2006).

Uniform LBP codes of the aligned grey face, histogrammed over a grid of
cells, square-rooted (Hellinger) and L2-normalised, so cosine similarity
works as with learned embeddings. Needs no weights; it recognises the same
photo under small changes, not a person across photos. Use an ArcFace model
(``embedder.backend: arcface``) for real re-identification.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from engines import Device
from streamer.config_base import StrictModel
from streamer.embed.vectors import l2_normalise


class LbpHistogramConfig(StrictModel):
    backend: Literal["lbp_histogram"] = "lbp_histogram"
    grid: int = Field(6, ge=2, le=16, description="cells per side")
    radius: int = Field(2, ge=1, le=3)
    blur_sigma: float = Field(1.5, ge=0, le=5, description="smoothing before LBP; without it, sensor noise "
                              "moves the descriptor more than a change of person does")


MEAN_DESCRIPTOR = Path(__file__).with_name("lbp_mean_descriptor.npy")


class LbpHistogramEmbedder:
    student = None  # no student can be trained from this model
    hides_occluders = False  # its matching leaves out the cells an occluder hides instead (visible_dims)

    def __init__(self, config: LbpHistogramConfig, device: Device):
        self._grid = config.grid
        self._radius = config.radius
        self._points = 8
        self._blur = config.blur_sigma
        # Raw LBP-histogram cosines of any two faces sit at 0.92-0.97: what faces share dominates. The
        # mean face descriptor is subtracted so cosine measures what differs (fitted once on 1,600 real
        # faces, see fit_mean_descriptor); only the default 6x6, R=2 layout has one.
        self._mean = self._load_mean(config)
        self.default_threshold = 0.45 if self._mean is not None else 0.975
        centred = int(self._mean is not None)
        self.model_id = f"lbp_histogram:g{config.grid}r{config.radius}b{config.blur_sigma}c{centred}"
        self.description = f"LBP-histogram descriptor, {config.grid}x{config.grid} cells (classical, no weights; CPU)"

    def _load_mean(self, config: LbpHistogramConfig) -> np.ndarray | None:
        if (config.grid, config.radius, config.blur_sigma) != (6, 2, 1.5) or not MEAN_DESCRIPTOR.is_file():
            return None
        return np.load(MEAN_DESCRIPTOR, allow_pickle=False).astype(np.float32)

    def visible_dims(self, masks: np.ndarray) -> np.ndarray:
        """A cell counts as seen when under a quarter of it was hidden; its 10 bins get weight 1."""
        grid, bins = self._grid, self._points + 2
        resized = np.stack(
            [cv2.resize(m.astype(np.uint8), (112, 112), interpolation=cv2.INTER_NEAREST) for m in masks]
        )
        cell = 112 // grid
        hidden = resized[:, : cell * grid, : cell * grid].reshape(len(masks), grid, cell, grid, cell).mean(axis=(2, 4))
        return np.repeat((hidden < 0.25).reshape(len(masks), -1), bins, axis=1).astype(np.float32)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        raw = self.describe(crops)
        return l2_normalise(raw - self._mean if self._mean is not None else raw)

    def describe(self, crops: np.ndarray) -> np.ndarray:
        """(n, D) raw descriptors: per cell, the square root of the normalised uniform-LBP histogram."""
        from skimage.feature import local_binary_pattern

        bins = self._points + 2  # uniform patterns + one bin for the rest
        cell = 112 // self._grid
        out = np.zeros((len(crops), self._grid * self._grid * bins), np.float32)
        for i, crop in enumerate(crops):
            gray = cv2.cvtColor(cv2.resize(crop, (112, 112), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
            if self._blur:
                gray = cv2.GaussianBlur(gray, (0, 0), self._blur)
            codes = local_binary_pattern(gray, self._points, self._radius, method="uniform").astype(np.int32)
            codes = codes[: cell * self._grid, : cell * self._grid]
            cells = codes.reshape(self._grid, cell, self._grid, cell).transpose(0, 2, 1, 3).reshape(-1, cell * cell)
            hist = np.stack([np.bincount(c, minlength=bins) for c in cells]).astype(np.float32)
            out[i] = np.sqrt(hist.ravel() / (cell * cell))
        return out


def fit_mean_descriptor(crops: np.ndarray) -> np.ndarray:
    """The mean raw descriptor of many aligned faces (``crops`` (n, S, S, 3)): what ``embed`` subtracts."""
    return LbpHistogramEmbedder(LbpHistogramConfig(), device=None).describe(crops).mean(axis=0)
