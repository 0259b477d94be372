"""Landmark error: a face cut from the frame by landmarks a detector measured on it as the camera saw it.

An occluder moves the landmarks a detector finds: SCRFD's 5 points on the evaluation's probes stray from
those of the same photo clean by a median 0.04 of the eye distance without an occluder, 0.07 under
sunglasses, 0.09 under hands and 0.10 under face masks (90th percentiles 0.09, 0.12, 0.20, 0.19; 10% of
masked probes and hands were not found at all). A model taught on perfectly aligned crops meets those crops
only in the stream. ``misaligned`` moves a crop by a random similarity of about that size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from streamer.datagen.face_frame import FaceFrame


@dataclass(frozen=True)
class LandmarkError:
    """The spread of the random similarity, per crop: a normal shift along each axis (in eye distances), a
    normal rotation (degrees) and a log-normal scale, about the landmarks' centre. These defaults move the
    5 points by a median of about 0.1 eye distance, the size measured under face masks."""

    shift: float = 0.08
    rotation_deg: float = 4.0
    scale: float = 0.04


def misaligned(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator,
               error: LandmarkError = LandmarkError()) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (an aligned crop whose 5 points are ``landmarks``) as a crop cut by landmarks off by a random
    similarity, and where its points now lie; pixels from beyond the crop repeat its edge."""
    matrix = misalignment(landmarks, rng, error)
    size = image.shape[1], image.shape[0]
    moved = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return moved, cv2.transform(landmarks[None].astype(np.float32), matrix)[0]


def misalignment(landmarks: np.ndarray, rng: np.random.Generator, error: LandmarkError = LandmarkError()) -> np.ndarray:
    """The (2, 3) random similarity ``misaligned`` moves a crop by."""
    eye_distance = FaceFrame(landmarks).eye_distance
    centre = landmarks.mean(axis=0)
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), rng.normal(0.0, error.rotation_deg),
                                     float(np.exp(rng.normal(0.0, error.scale))))
    matrix[:, 2] += rng.normal(0.0, error.shift, 2) * eye_distance
    return matrix
