"""Draws what the pipeline found onto the frame an operator watches.

Reconstructed pixels are always marked as synthetic (a dashed magenta outline
and a SYNTHETIC label), so an operator never mistakes a reconstruction for
the camera's own pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from streamer.align import crop_mask_outline, paste_back
from streamer.records import Face, FrameResult

KNOWN = (80, 200, 60)
UNKNOWN = (0, 165, 255)
SYNTHETIC = (255, 0, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def annotate(result: FrameResult, show_reconstruction: bool = True, hud: str = "") -> np.ndarray:
    image = result.frame.image.copy()
    for face in result.faces:
        if face.track_id < 0:
            continue  # tentative tracks are not shown until confirmed
        if show_reconstruction and face.reconstructed and face.occlusion is not None:
            paste_back(image, face.crop, face.reconstruction, face.occlusion.mask)
        _draw_face(image, face)
    if hud:
        _label(image, hud, (8, 22), (255, 255, 255), scale=0.55)
    return image


def _draw_face(image: np.ndarray, face: Face) -> None:
    x1, y1, x2, y2 = face.box.astype(int)
    name = face.match.identity if face.match and face.match.identity else None
    colour = KNOWN if name else UNKNOWN
    cv2.rectangle(image, (x1, y1), (x2, y2), colour, 2)
    score = f" {face.match.score:.2f}" if face.match else ""
    _label(image, f"#{face.track_id} {name or 'unknown'}{score}", (x1, y1 - 6), colour)
    if face.occlusion is not None and face.occlusion.occluded:
        for contour in crop_mask_outline(face.crop, face.occlusion.mask):
            _dashed_polyline(image, contour.reshape(-1, 2), SYNTHETIC if face.reconstructed else UNKNOWN)
        what = "SYNTHETIC" if face.reconstructed else "occluded"
        detail = f"{what}: {','.join(face.occlusion.classes)} {face.occlusion.fraction:.0%}"
        _label(image, detail, (x1, y2 + 16), SYNTHETIC if face.reconstructed else UNKNOWN, scale=0.45)


def _label(image: np.ndarray, text: str, origin: tuple[int, int], colour, scale: float = 0.5) -> None:
    """``text`` with its baseline at ``origin``, moved as little as needed to be wholly inside the frame: a
    name or a SYNTHETIC mark on a face at the frame's edge stays readable."""
    (width, height), baseline = cv2.getTextSize(text, FONT, scale, 3)
    x = min(max(origin[0], 2), max(2, image.shape[1] - width - 2))
    y = min(max(origin[1], height + 2), max(height + 2, image.shape[0] - baseline - 2))
    cv2.putText(image, text, (x, y), FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, (x, y), FONT, scale, colour, 1, cv2.LINE_AA)


def _dashed_polyline(image: np.ndarray, points: np.ndarray, colour, dash: int = 6) -> None:
    """The closed outline through ``points``, drawn ``dash`` px on, ``dash`` px off, in one call."""
    if len(points) < 2:
        return
    closed = np.vstack([points, points[:1]]).astype(np.float32)
    along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
    marks = np.arange(0.0, along[-1] + dash, dash).clip(max=along[-1])
    ends = np.stack([np.interp(marks, along, closed[:, 0]), np.interp(marks, along, closed[:, 1])], axis=1)
    ends = ends.round().astype(np.int32)
    cv2.polylines(image, [ends[i:i + 2] for i in range(0, len(ends) - 1, 2)], False, colour, 2, cv2.LINE_AA)
