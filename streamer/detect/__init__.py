"""Face detection with 5 landmarks: one interface, backends chosen by ``detector.backend``."""

from __future__ import annotations

from typing import Annotated, Protocol

import cv2
import numpy as np
from pydantic import Field

from engines import Device
from streamer.detect.dlib_detector import DlibDetector, DlibDetectorConfig
from streamer.detect.haar import HaarConfig, HaarDetector
from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
from streamer.detect.yunet import YunetConfig, YunetDetector
from streamer.records import AlignedCrop, Detections


class FaceDetector(Protocol):
    description: str  # what runs, for the start-up banner and `doctor`
    supports_regions: bool  # detect_regions is cheaper than detect (see detect/regions.py)

    def detect(self, image: np.ndarray) -> Detections:
        """Faces in one (H, W, 3) uint8 BGR image."""
        ...

    def detect_regions(self, crops: list[np.ndarray], frame_shapes: list[tuple[int, ...]]) -> list[Detections]:
        """Faces in small cut-outs around faces the streams follow (each from a frame of the shape given),
        each in its cut-out's pixels."""
        ...


DetectorConfig = Annotated[HaarConfig | ScrfdConfig | DlibDetectorConfig | YunetConfig,
                           Field(discriminator="backend")]

_BACKENDS = {"haar": HaarDetector, "scrfd": ScrfdDetector, "dlib": DlibDetector, "yunet": YunetDetector}


def build_detector(config: DetectorConfig, device: Device) -> FaceDetector:
    return _BACKENDS[config.backend](config, device)


def detect_in_photo(detector: FaceDetector, image: np.ndarray) -> tuple[Detections, np.ndarray]:
    """Faces in a still photo, and the image they were found in.

    Enrolment and test photos are often cropped tight to the face, where detectors trained on
    scenes see no face: if none is found, the border is extended by half the size and it retries.
    """
    found = detector.detect(image)
    if len(found) == 0:
        pad = max(image.shape[:2]) // 2
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        found = detector.detect(image)
    return found, image


def align_most_confident(detector: FaceDetector, image: np.ndarray, size: int) -> tuple[AlignedCrop, np.ndarray] | None:
    """The most confident face of a still photo aligned to a (size, size) crop, and its 5 points in
    that crop; None if there is no face."""
    from streamer.align import align_face

    found, searched = detect_in_photo(detector, image)
    if not len(found):
        return None
    pad = (searched.shape[0] - image.shape[0]) // 2  # the border detect_in_photo added to find it, if any
    points = found.landmarks[int(found.scores.argmax())] - pad
    # Cut from the photo itself (the same pixels: the border replicates its edge), so the crop says which of
    # its pixels lie beyond the photo's edge.
    crop = align_face(image, points, size)
    return crop, cv2.transform(points[None].astype(np.float32), crop.matrix)[0]
