"""Face detection with 5 landmarks: one interface, backends chosen by ``detector.backend``."""

from __future__ import annotations

from typing import Annotated, Protocol

import numpy as np
from pydantic import Field

from engines import Device
from streamer.detect.haar import HaarConfig, HaarDetector
from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
from streamer.records import Detections


class FaceDetector(Protocol):
    description: str  # what runs, for the start-up banner and `doctor`

    def detect(self, image: np.ndarray) -> Detections:
        """Faces in one (H, W, 3) uint8 BGR image."""
        ...


DetectorConfig = Annotated[HaarConfig | ScrfdConfig, Field(discriminator="backend")]

_BACKENDS = {"haar": HaarDetector, "scrfd": ScrfdDetector}


def build_detector(config: DetectorConfig, device: Device) -> FaceDetector:
    return _BACKENDS[config.backend](config, device)
