"""Face alignment to the canonical ArcFace 5-point layout, and back."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from streamer.records import AlignedCrop

# insightface's arcface_dst: where the 5 points land in a 112x112 aligned crop.
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


def template(size: int) -> np.ndarray:
    """The 5-point template for an aligned crop of ``size`` px (a multiple of 112)."""
    if size % 112:
        raise ValueError(f"aligned crop size must be a multiple of 112, got {size}")
    return ARCFACE_112 * (size / 112.0)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares similarity transform taking points ``src`` onto ``dst``."""
    matrix, _ = cv2.estimateAffinePartial2D(src.astype(np.float32), dst.astype(np.float32), method=cv2.LMEDS)
    if matrix is None:  # degenerate points: fall back to the exact two-point solution
        matrix = cv2.estimateAffinePartial2D(src[:2], dst[:2])[0]
    return matrix


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int) -> AlignedCrop:
    """Warps the face with 5 ``landmarks`` (5, 2) to a (size, size) crop in ArcFace layout."""
    matrix = similarity(landmarks, template(size))
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return AlignedCrop(image=crop, matrix=matrix, outside=beyond_frame(matrix, size, image.shape[:2]))


def beyond_frame(matrix: np.ndarray, size: int, frame_shape: tuple[int, int]) -> np.ndarray | None:
    """(size, size) bool: the crop pixels whose source lies outside a frame of ``frame_shape`` (height, width),
    where the warp replicated the frame's edge; None when the whole crop lies inside (the usual case, decided
    on its four corners)."""
    height, width = frame_shape
    inverse = cv2.invertAffineTransform(matrix.astype(np.float64))
    corners = np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]], np.float64)

    def off(points: np.ndarray) -> np.ndarray:
        source = points @ inverse[:, :2].T + inverse[:, 2]
        return (source[:, 0] < 0) | (source[:, 0] > width - 1) | (source[:, 1] < 0) | (source[:, 1] > height - 1)

    if not off(corners).any():  # the crop is a convex image of a rectangle: corners inside, all inside
        return None
    return off(_pixel_grid(size)).reshape(size, size)


@lru_cache(maxsize=4)
def _pixel_grid(size: int) -> np.ndarray:
    ys, xs = np.mgrid[:size, :size]
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    grid.flags.writeable = False
    return grid


def landmarks_from_eyes(left_eye: np.ndarray, right_eye: np.ndarray) -> np.ndarray:
    """All 5 points placed by the template, given the two eye centres (image left, image right)."""
    eyes_template = ARCFACE_112[:2]
    matrix = cv2.estimateAffinePartial2D(eyes_template, np.stack([left_eye, right_eye]).astype(np.float32))[0]
    return cv2.transform(ARCFACE_112[None], matrix)[0]


# Where the 5 points sit inside a frontal face box from OpenCV's Haar cascade, as fractions of the box.
_POINTS_IN_HAAR_BOX = np.array(
    [[0.32, 0.40], [0.68, 0.40], [0.50, 0.58], [0.36, 0.76], [0.64, 0.76]], dtype=np.float32
)


def landmarks_from_box(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = box
    return (_POINTS_IN_HAAR_BOX * [x2 - x1, y2 - y1] + [x1, y1]).astype(np.float32)


def box_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """A face box around 5 points, sized like a detector's box (eyes-to-mouth span x ~2)."""
    centre = landmarks.mean(axis=0)
    eye_mid = landmarks[:2].mean(axis=0)
    mouth_mid = landmarks[3:].mean(axis=0)
    span = max(np.linalg.norm(mouth_mid - eye_mid), np.linalg.norm(landmarks[1] - landmarks[0]))
    half = span * 1.1
    return np.array([centre[0] - half, centre[1] - half * 1.15, centre[0] + half, centre[1] + half], np.float32)


def paste_back(
    frame: np.ndarray, crop: AlignedCrop, patch: np.ndarray, mask: np.ndarray, feather_px: int = 3
) -> np.ndarray:
    """Blends ``patch`` (crop layout) into ``frame`` where ``mask`` (crop layout, bool) is set.

    The mask is dilated and blurred by ``feather_px`` so the seam fades instead
    of showing a hard edge. Writes into ``frame`` and returns it.
    """
    h, w = frame.shape[:2]
    alpha = mask.astype(np.float32)
    if feather_px > 0:
        k = 2 * feather_px + 1
        alpha = cv2.dilate(alpha, np.ones((k, k), np.uint8))
        alpha = cv2.GaussianBlur(alpha, (k, k), 0)
        # A whole occluder reaches the crop's edge (a mask over the chin onto the neck): fade there too, or the
        # crop's straight border would show as a seam in the frame.
        alpha *= _border_fade(alpha.shape[0], k)
    inverse = cv2.invertAffineTransform(crop.matrix)
    x1, y1, x2, y2 = _crop_bounds_in_frame(inverse, crop.image.shape[0], w, h)
    if x2 <= x1 or y2 <= y1:
        return frame
    # Warp only into the face's bounding rectangle, not the whole frame.
    inverse_roi = inverse.copy()
    inverse_roi[:, 2] -= [x1, y1]
    size = (x2 - x1, y2 - y1)
    warped = cv2.warpAffine(patch, inverse_roi, size, flags=cv2.INTER_LINEAR)
    warped_alpha = cv2.warpAffine(alpha, inverse_roi, size, flags=cv2.INTER_LINEAR)[..., None]
    roi = frame[y1:y2, x1:x2].astype(np.float32)
    frame[y1:y2, x1:x2] = (roi * (1 - warped_alpha) + warped.astype(np.float32) * warped_alpha).astype(np.uint8)
    return frame


@lru_cache(maxsize=8)
def _border_fade(size: int, width: int) -> np.ndarray:
    """(size, size) float32: 0 at a crop's edge, rising linearly to 1 ``width`` px inside it."""
    ramp = np.clip((np.minimum(np.arange(size), np.arange(size)[::-1]) + 0.5) / width, 0, 1).astype(np.float32)
    fade = np.minimum(ramp[:, None], ramp[None, :])
    fade.flags.writeable = False
    return fade


def crop_mask_outline(crop: AlignedCrop, mask: np.ndarray) -> list[np.ndarray]:
    """Contours of a crop-layout mask, mapped to frame pixels (for drawing)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    inverse = cv2.invertAffineTransform(crop.matrix)
    return [cv2.transform(c.astype(np.float32), inverse).astype(np.int32) for c in contours]


def _crop_bounds_in_frame(inverse: np.ndarray, size: int, width: int, height: int) -> tuple[int, int, int, int]:
    corners = np.array([[[0, 0], [size, 0], [0, size], [size, size]]], np.float32)
    pts = cv2.transform(corners, inverse)[0]
    x1, y1 = np.floor(pts.min(axis=0)).astype(int)
    x2, y2 = np.ceil(pts.max(axis=0)).astype(int)
    return max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
