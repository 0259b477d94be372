"""Constant-velocity Kalman filter on a box's centre, aspect ratio and height (as in SORT/ByteTrack).

State: (cx, cy, a, h, vcx, vcy, va, vh). Noise scales with the box height, so small far faces and
large near ones are tracked alike.
"""

from __future__ import annotations

import numpy as np

STD_POSITION = 1.0 / 20
STD_VELOCITY = 1.0 / 160

_MOTION = np.eye(8)
_MOTION[:4, 4:] = np.eye(4)
_PROJECT = np.eye(4, 8)


def box_to_xyah(box: np.ndarray) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    return np.array([box[0] + w / 2, box[1] + h / 2, w / max(h, 1e-6), h], np.float64)


def xyah_to_box(xyah: np.ndarray) -> np.ndarray:
    cx, cy, a, h = xyah[:4]
    w = a * h
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


class BoxKalman:
    def __init__(self, box: np.ndarray):
        measurement = box_to_xyah(box)
        self.mean = np.r_[measurement, np.zeros(4)]
        h = measurement[3]
        std = [2 * STD_POSITION * h, 2 * STD_POSITION * h, 1e-2, 2 * STD_POSITION * h,
               10 * STD_VELOCITY * h, 10 * STD_VELOCITY * h, 1e-5, 10 * STD_VELOCITY * h]
        self.covariance = np.diag(np.square(std))

    def predict(self) -> np.ndarray:
        h = self.mean[3]
        std = [STD_POSITION * h, STD_POSITION * h, 1e-2, STD_POSITION * h,
               STD_VELOCITY * h, STD_VELOCITY * h, 1e-5, STD_VELOCITY * h]
        self.mean = _MOTION @ self.mean
        self.covariance = _MOTION @ self.covariance @ _MOTION.T + np.diag(np.square(std))
        return self.box

    def update(self, box: np.ndarray) -> None:
        h = self.mean[3]
        noise = np.diag(np.square([STD_POSITION * h, STD_POSITION * h, 1e-1, STD_POSITION * h]))
        projected_cov = _PROJECT @ self.covariance @ _PROJECT.T + noise
        gain = np.linalg.solve(projected_cov, _PROJECT @ self.covariance).T
        self.mean = self.mean + gain @ (box_to_xyah(box) - _PROJECT @ self.mean)
        self.covariance = self.covariance - gain @ projected_cov @ gain.T

    def stop(self) -> None:
        """A lost box does not keep drifting: its velocity is zeroed (faces stop, turn away, are hidden)."""
        self.mean[4:] = 0

    @property
    def box(self) -> np.ndarray:
        return xyah_to_box(self.mean)
