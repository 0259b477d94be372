"""Classical inpainting (OpenCV Telea / Navier-Stokes): the stand-in until the learned inpainter lands."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from engines import Device
from streamer.config_base import StrictModel
from streamer.inpaint.masks import grow


class OpenCVInpaintConfig(StrictModel):
    backend: Literal["opencv"] = "opencv"
    method: Literal["telea", "ns"] = "telea"
    radius: int = Field(5, ge=1, le=30, description="neighbourhood radius, px")
    dilate_px: int = Field(2, ge=0, le=10, description="grow the mask so occluder edges are replaced too")
    max_batch: int = Field(32, ge=1, le=1024)


class OpenCVInpainter:
    def __init__(self, config: OpenCVInpaintConfig, device: Device):
        self._config = config
        self._flag = cv2.INPAINT_TELEA if config.method == "telea" else cv2.INPAINT_NS
        self.max_batch = config.max_batch
        self.description = f"OpenCV {config.method} inpainting (classical, no weights; CPU)"

    def inpaint(self, crops: np.ndarray, masks: np.ndarray) -> np.ndarray:
        out = np.empty_like(crops)
        for i, (crop, hole) in enumerate(zip(crops, grow(masks, self._config.dilate_px))):
            out[i] = cv2.inpaint(crop, hole.astype(np.uint8), self._config.radius, self._flag)
        return out
