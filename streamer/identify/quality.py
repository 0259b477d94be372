"""How usable one face is for recognition: size, sharpness and pose, from the detector's box and 5 points."""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from streamer.config_base import StrictModel
from streamer.records import Face, FaceQuality


class QualityConfig(StrictModel):
    min_face_px: float = Field(32, ge=8, description="faces narrower than this (box width, px) are not used")
    min_sharpness: float = Field(
        20, ge=0, description="variance of the Laplacian of the grey 112 px aligned crop; blurrier faces are not used"
    )
    max_yaw: float = Field(0.35, gt=0, le=1, description="|nose offset from the eyes' midpoint| / eye distance")
    max_pitch: float = Field(0.3, gt=0, le=1, description="|nose height between eyes and mouth - 0.5|")


def pose(landmarks: np.ndarray) -> tuple[float, float]:
    """Yaw and pitch proxies from the 5 points, in the face's own (eye-line) frame."""
    left_eye, right_eye, nose, left_mouth, right_mouth = landmarks.astype(np.float64)
    eye_vector = right_eye - left_eye
    eye_distance = max(np.linalg.norm(eye_vector), 1e-6)
    axis_x = eye_vector / eye_distance
    axis_y = np.array([-axis_x[1], axis_x[0]])
    eye_mid, mouth_mid = (left_eye + right_eye) / 2, (left_mouth + right_mouth) / 2
    yaw = float((nose - eye_mid) @ axis_x / eye_distance)
    face_height = max((mouth_mid - eye_mid) @ axis_y, 1e-6)
    pitch = float((nose - eye_mid) @ axis_y / face_height - 0.5)
    return yaw, pitch


def sharpness(crop: np.ndarray) -> float:
    gray = cv2.cvtColor(cv2.resize(crop, (112, 112), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_32F).var())


def assess(box: np.ndarray, landmarks: np.ndarray, crop: np.ndarray, config: QualityConfig) -> FaceQuality:
    width = float(box[2] - box[0])
    sharp = sharpness(crop)
    yaw, pitch = pose(landmarks)
    checks = [
        (width >= config.min_face_px, f"face {width:.0f} px wide"),
        (sharp >= config.min_sharpness, f"blurred (sharpness {sharp:.0f})"),
        (abs(yaw) <= config.max_yaw, f"turned (yaw {yaw:+.2f})"),
        (abs(pitch) <= config.max_pitch, f"tilted (pitch {pitch:+.2f})"),
    ]
    failed = [reason for ok, reason in checks if not ok]
    weight = (min(1.0, width / (2 * config.min_face_px)) * min(1.0, sharp / (2 * max(config.min_sharpness, 1e-6)))
              * max(0.0, 1 - abs(yaw) / (2 * config.max_yaw)))
    return FaceQuality(width, sharp, yaw, pitch, float(weight), not failed, failed[0] if failed else None)


def assess_face(face: Face, config: QualityConfig) -> FaceQuality:
    """``assess`` of one analysed face, kept on it: the track's appearance check and its identity both ask."""
    if face.quality is None:
        face.quality = assess(face.box, face.landmarks, face.crop.image, config)
    return face.quality
