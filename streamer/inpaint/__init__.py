"""Reconstruction of occluded face pixels: one interface, backends chosen by ``inpainter.backend``."""

from __future__ import annotations

from typing import Annotated, Protocol

import numpy as np
from pydantic import Field

from engines import Device
from streamer.inpaint.learned import LearnedInpaintConfig, LearnedInpainter
from streamer.inpaint.opencv import OpenCVInpaintConfig, OpenCVInpainter


class Inpainter(Protocol):
    description: str
    max_batch: int

    def inpaint(self, crops: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """(n, S, S, 3) uint8 BGR crops + (n, S, S) bool masks -> (n, S, S, 3) uint8 reconstructions.

        Pixels outside the mask are returned unchanged.
        """
        ...


InpainterConfig = Annotated[LearnedInpaintConfig | OpenCVInpaintConfig, Field(discriminator="backend")]

_BACKENDS = {"learned": LearnedInpainter, "opencv": OpenCVInpainter}


def build_inpainter(config: InpainterConfig, device: Device) -> Inpainter:
    return _BACKENDS[config.backend](config, device)


def inpaint_batched(inpainter: Inpainter, crops: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Runs ``inpainter`` over any number of crops in chunks of its ``max_batch``."""
    if len(crops) == 0:
        return crops.copy()
    step = inpainter.max_batch
    chunks = [inpainter.inpaint(crops[i : i + step], masks[i : i + step]) for i in range(0, len(crops), step)]
    return np.concatenate(chunks)
