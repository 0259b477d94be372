"""Landmark error for the student's training faces: the crop moves as landmarks a detector got wrong would cut it."""

from __future__ import annotations

import cv2
import numpy as np

from streamer.align import ARCFACE_112
from streamer.datagen.misalign import LandmarkError, misaligned


def _dots(points: np.ndarray, size: int = 112) -> np.ndarray:
    image = np.zeros((size, size, 3), np.uint8)
    for x, y in points:
        cv2.circle(image, (int(round(x)), int(round(y))), 2, (255, 255, 255), -1)
    return image


def test_the_points_returned_are_where_the_faces_features_went():
    rng = np.random.default_rng(1)
    for _ in range(20):
        moved, points = misaligned(_dots(ARCFACE_112), ARCFACE_112, rng)
        grey = moved[:, :, 0].astype(np.float32)
        for x, y in points:  # each dot's centre of brightness, near where the function says the point lies
            ys, xs = np.mgrid[int(y) - 5:int(y) + 6, int(x) - 5:int(x) + 6]
            window = grey[ys, xs]
            centre = np.array([(xs * window).sum(), (ys * window).sum()]) / window.sum()
            assert np.linalg.norm(centre - (x, y)) < 0.8


def test_the_error_is_about_what_an_occluder_does_to_a_detector():
    """Median 0.1 eye distance, as SCRFD's points on masked probes stray from the clean photo's."""
    rng = np.random.default_rng(0)
    eye = np.linalg.norm(ARCFACE_112[1] - ARCFACE_112[0])
    blank = np.zeros((112, 112, 3), np.uint8)
    errors = [np.linalg.norm(misaligned(blank, ARCFACE_112, rng)[1] - ARCFACE_112, axis=1).mean() / eye
              for _ in range(500)]
    assert 0.08 < np.median(errors) < 0.13 and np.percentile(errors, 90) < 0.25
    still = misaligned(_dots(ARCFACE_112), ARCFACE_112, rng, LandmarkError(0.0, 0.0, 0.0))
    assert np.array_equal(still[0], _dots(ARCFACE_112)) and np.allclose(still[1], ARCFACE_112, atol=1e-4)
