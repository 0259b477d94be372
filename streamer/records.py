"""The typed records that flow between pipeline stages.

Image conventions everywhere: ``np.ndarray`` of shape (H, W, 3), dtype uint8,
BGR channel order (what OpenCV and insightface expect). Boxes are
[x1, y1, x2, y2] in pixels of the frame; landmarks are the 5 SCRFD/ArcFace
points (left eye, right eye, nose tip, left mouth corner, right mouth corner)
as (x, y) pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _check_shape(name: str, array: np.ndarray, shape: tuple[int | None, ...]) -> None:
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
        expected = str(tuple("_" if s is None else s for s in shape)).replace("'", "")
        raise ValueError(f"{name} must have shape {expected}, but got shape {array.shape}")


@dataclass
class VideoFrame:
    """One decoded frame of one source."""

    stream: str
    index: int  # 0-based frame number within the source
    image: np.ndarray  # (H, W, 3) uint8 BGR
    pts_s: float | None  # presentation time in seconds, from the container
    wall_time: float  # time.time() when decoded: event timestamps
    decoded_at: float  # time.monotonic() when decoded: latency
    image_file: str | None = None  # the file the frame is, when it is a file of its own (image folders)

    def __post_init__(self) -> None:
        _check_shape("VideoFrame.image", self.image, (None, None, 3))


@dataclass(frozen=True)
class Detections:
    """A detector's output for one image, N-aligned arrays."""

    boxes: np.ndarray  # (n, 4) float32 xyxy pixels
    scores: np.ndarray  # (n,) float32 in [0, 1]
    landmarks: np.ndarray  # (n, 5, 2) float32 pixels

    def __post_init__(self) -> None:
        n = len(self.boxes)
        _check_shape("Detections.boxes", self.boxes, (n, 4))
        _check_shape("Detections.scores", self.scores, (n,))
        _check_shape("Detections.landmarks", self.landmarks, (n, 5, 2))

    def __len__(self) -> int:
        return len(self.boxes)

    @staticmethod
    def empty() -> Detections:
        return Detections(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32)
        )


@dataclass(frozen=True)
class AlignedCrop:
    """A face warped to the canonical ArcFace layout."""

    image: np.ndarray  # (S, S, 3) uint8 BGR
    matrix: np.ndarray  # (2, 3) float affine: frame pixels -> crop pixels

    def __post_init__(self) -> None:
        size = self.image.shape[0]
        _check_shape("AlignedCrop.image", self.image, (size, size, 3))
        _check_shape("AlignedCrop.matrix", self.matrix, (2, 3))


@dataclass(frozen=True)
class Occlusion:
    """What hides part of one face, in crop coordinates."""

    mask: np.ndarray  # (S, S) bool, True = occluded pixel
    classes: tuple[str, ...]  # occluder class names found, e.g. ("face_mask",)
    fraction: float  # occluded share of the face region, 0..1

    @property
    def occluded(self) -> bool:
        return bool(self.classes)


@dataclass(frozen=True)
class Match:
    identity: str | None  # None = unknown
    score: float  # cosine similarity to the best gallery identity
    pseudo: bool = False  # a pseudo-identity (an unknown face seen before), not an enrolled person


@dataclass
class Face:
    """One face in one frame, filled in stage by stage."""

    box: np.ndarray  # (4,) float32 xyxy
    score: float
    landmarks: np.ndarray  # (5, 2) float32
    track_id: int = -1
    crop: AlignedCrop | None = None
    occlusion: Occlusion | None = None
    reconstruction: np.ndarray | None = None  # (S, S, 3) uint8: the crop with the occluded pixels synthesised
    embedding: np.ndarray | None = None  # (D,) float32, L2-normalised: of the crop as the camera saw it
    visible_weights: np.ndarray | None = None  # (D,) weights of the dimensions the camera saw (None: all)
    reconstruction_embedding: np.ndarray | None = None  # (D,) of the reconstruction, when there is one
    match: Match | None = None  # the face's track's identity decision
    track_named: bool = False  # its track had a name (a person or a pseudo-identity) before this frame

    @property
    def reconstructed(self) -> bool:
        return self.reconstruction is not None


@dataclass
class FrameResult:
    frame: VideoFrame
    faces: list[Face] = field(default_factory=list)
    # Seconds this frame spent in each stage, waiting for its batch mates included (queue: decoded to
    # picked up for analysis): the per-stage latency behind the percentiles a run reports.
    stage_s: dict[str, float] = field(default_factory=dict)


@dataclass
class TrackEvent:
    """A change on a face track: what sinks send (``fields``) and what the store keeps besides."""

    fields: dict  # JSON-ready: type, stream, track_id, time, identity, score, occluders, ...
    time: float  # wall-clock seconds
    identity_id: int | None = None  # the store's row of the identity named
    crop: np.ndarray | None = None  # the face at that moment (identity events)
    embedding: np.ndarray | None = None  # the track's aggregated embedding (identity events)
    model_id: str | None = None
