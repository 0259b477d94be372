"""Where things sit on a face, from its 5 landmarks: the frame every occluder is placed in."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FaceFrame:
    """A face-local coordinate frame on an image.

    Origin: the midpoint of the eyes. x: along the eye line, in eye distances (left eye at -0.5,
    right eye at +0.5). y: perpendicular, downwards, in eye-to-mouth distances (mouth at about 1).
    """

    landmarks: np.ndarray  # (5, 2): left eye, right eye, nose, left mouth corner, right mouth corner

    @property
    def origin(self) -> np.ndarray:
        return self.landmarks[:2].mean(axis=0)

    @property
    def x_axis(self) -> np.ndarray:
        """One eye distance along the eye line, in pixels."""
        return self.landmarks[1] - self.landmarks[0]

    @property
    def y_axis(self) -> np.ndarray:
        """One eye-to-mouth distance, perpendicular to the eye line, downwards, in pixels."""
        along = self.x_axis / max(float(np.linalg.norm(self.x_axis)), 1e-6)
        down = np.array([-along[1], along[0]], np.float32)
        mouth = self.landmarks[3:].mean(axis=0)
        return down * max(float(np.dot(mouth - self.origin, down)), 1e-6)

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.x_axis))

    @property
    def angle_deg(self) -> float:
        """Roll of the eye line, degrees (counter-clockwise in image coordinates is negative)."""
        return float(np.degrees(np.arctan2(self.x_axis[1], self.x_axis[0])))

    @property
    def yaw(self) -> float:
        """How far the nose sits off the eye midpoint along the eye line, in eye distances; + = turned to
        the image's right."""
        return float(np.dot(self.landmarks[2] - self.origin, self.x_axis) / self.eye_distance**2)

    def point(self, x: float, y: float) -> np.ndarray:
        return (self.origin + x * self.x_axis + y * self.y_axis).astype(np.float32)

    def points(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, np.float32).reshape(-1, 2)
        return (self.origin + xy[:, :1] * self.x_axis + xy[:, 1:] * self.y_axis).astype(np.float32)
