"""The typed records that flow between pipeline stages.

Image conventions everywhere: ``np.ndarray`` of shape (H, W, 3), dtype uint8,
BGR channel order (what OpenCV and insightface expect). Boxes are
[x1, y1, x2, y2] in pixels of the frame; landmarks are the 5 SCRFD/ArcFace
points (left eye, right eye, nose tip, left mouth corner, right mouth corner)
as (x, y) pixels.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum

import numpy as np


def _check_shape(name: str, array: np.ndarray, shape: tuple[int | None, ...]) -> None:
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
        expected = str(tuple("_" if s is None else s for s in shape)).replace("'", "")
        raise ValueError(f"{name} must have shape {expected}, but got shape {array.shape}")


class Stage(str, Enum):
    """The loop's stages, in order, as per-frame latency and per-item time are reported: ``queue`` is the
    wait from decode to detection; occlusion, inpaint and embed make up the analysis of the faces."""

    QUEUE = "queue"
    DETECT = "detect"
    TRACK = "track"
    OCCLUSION = "occlusion"
    INPAINT = "inpaint"
    EMBED = "embed"
    IDENTIFY = "identify"
    EMIT = "emit"
    RENDER = "render"

    def __str__(self) -> str:
        return self.value


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
    session: int = 0  # the source's connection it came on (a camera's reconnects count up)

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
    # (S, S) bool: crop pixels beyond the frame's edge, filled by replicating it (a face at the edge of the
    # picture); None: the whole crop lies inside the frame
    outside: np.ndarray | None = None

    def __post_init__(self) -> None:
        size = self.image.shape[0]
        _check_shape("AlignedCrop.image", self.image, (size, size, 3))
        _check_shape("AlignedCrop.matrix", self.matrix, (2, 3))
        if self.outside is not None:
            _check_shape("AlignedCrop.outside", self.outside, (size, size))


@dataclass(frozen=True)
class OccluderInstance:
    """One occluder a segmenter found on a face crop, before the precision gate decides on it."""

    name: str  # its class
    confidence: float  # the segmenter's class score, 0..1
    mask: np.ndarray  # (S, S) bool: the whole occluder inside the crop, where the crop lies inside the frame


@dataclass(frozen=True)
class Occlusion:
    """What hides part of one face, in crop coordinates."""

    mask: np.ndarray  # (S, S) bool, True = occluded pixel: every kept occluder whole, face area or not
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


@dataclass(frozen=True)
class FaceQuality:
    """How usable one face is for recognition (identify/quality.py)."""

    width_px: float
    sharpness: float
    yaw: float  # 0 frontal; about 0.5 at a three-quarter view
    pitch: float  # 0 level
    weight: float  # 0..1: how much this face counts in its track's aggregate
    passed: bool
    reason: str | None  # why it did not pass


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
    quality: FaceQuality | None = None  # assessed once, when its track first asks

    @property
    def reconstructed(self) -> bool:
        return self.reconstruction is not None


@dataclass
class FrameResult:
    frame: VideoFrame
    faces: list[Face] = field(default_factory=list)
    # Seconds this frame spent in each stage, waiting for its batch mates included (queue: decoded to
    # picked up for analysis): the per-stage latency behind the percentiles a run reports.
    stage_s: dict[Stage, float] = field(default_factory=dict)


class EventKind(str, Enum):
    """What changed on a face track."""

    TRACK_START = "track_start"  # a face track is confirmed
    IDENTITY = "identity"  # its identity was decided or changed
    OCCLUSION = "occlusion"  # its occluders appeared or cleared (held for a few frames)
    TRACK_END = "track_end"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Decision:
    """A track's identity decision, and the evidence behind it."""

    identity_id: int | None
    name: str | None  # None: unknown
    pseudo: bool
    score: float | None  # cosine of the matching embedding to the identity (None: a pseudo-identity just made)
    matched_on: str | None  # "visible" | "student" | "reconstruction": which embedding decided (the face as
    # the camera saw it, embedded by the embedder or by its occlusion-robust student; or the reconstruction)
    score_visible: float | None  # the identity's score on what the camera saw
    score_reconstructed: float | None  # ... and on the reconstruction (None: nothing was reconstructed)
    threshold: float
    occluders: tuple[str, ...]
    paths: tuple[str, ...] = ()  # the identity paths compared: the face as seen ("visible" or "student"), and
    # "reconstruction" where gallery.reconstruction_for lets it decide for these occluders
    resembles: str | None = None  # a new pseudo-identity's nearest other one, when it came close to its threshold
    resembles_score: float | None = None

    @property
    def match(self) -> Match:
        return Match(self.name, self.score if self.score is not None else 1.0, self.pseudo)


@dataclass(frozen=True)
class FaceSeen:
    """The face a track event is about, as it was at that moment."""

    box: tuple[float, float, float, float]  # xyxy pixels
    occluders: tuple[str, ...]
    occluded_fraction: float
    reconstructed: bool

    @classmethod
    def of(cls, face: Face) -> FaceSeen:
        occ = face.occlusion
        return cls(tuple(float(v) for v in face.box), occ.classes if occ else (),
                   float(occ.fraction) if occ else 0.0, face.reconstructed)


@dataclass(frozen=True)
class TrackEvent:
    """A change on a face track: what the store keeps and every event sink receives."""

    kind: EventKind
    stream: str
    track_id: int
    time: float  # wall-clock seconds (the frame's decode time)
    frame: int | None = None  # the frame's index in its stream (None: the stream ended without one)
    pts_s: float | None = None
    image_file: str | None = None  # image folders: the file the frame is
    face: FaceSeen | None = None
    decision: Decision | None = None
    faces_used: int | None = None  # usable faces the identity rests on
    unusable_because: str | None = None  # why none was usable, while none is
    crop: np.ndarray | None = field(default=None, repr=False)  # identity events: the track's best face
    embedding: np.ndarray | None = field(default=None, repr=False)  # identity events: the aggregated embedding
    # identity events: the best face with its occluded pixels synthesised (SYNTHETIC), if it was reconstructed
    reconstruction: np.ndarray | None = field(default=None, repr=False)
    model_id: str | None = None  # the embedder that made ``embedding``
    embedding_in_json: bool = False  # output.event_embeddings: put the embedding in the JSON too

    @property
    def identity_id(self) -> int | None:
        """The store's row of the identity named, if any."""
        return self.decision.identity_id if self.decision else None

    def to_json(self, sighting: int | None = None) -> dict:
        """The event as consumers read it (events.jsonl, the webhook), with its row in the store."""
        out: dict = {"type": self.kind.value, "stream": self.stream, "track_id": self.track_id, "frame": self.frame,
                     "pts_s": None if self.pts_s is None else round(self.pts_s, 3)}
        if self.image_file:
            out["image_file"] = self.image_file
        out["time"] = dt.datetime.fromtimestamp(self.time, dt.timezone.utc).isoformat(timespec="milliseconds")
        if self.face is not None:
            out["box"] = [round(v, 1) for v in self.face.box]
            out.update(_decision_json(self.decision))
            out.update(occluded=bool(self.face.occluders), occluders=list(self.face.occluders),
                       occluded_fraction=round(self.face.occluded_fraction, 3), reconstructed=self.face.reconstructed)
        if self.faces_used is not None:
            out["faces_used"] = self.faces_used
        if self.unusable_because:
            out["unusable_because"] = self.unusable_because
        if self.embedding_in_json and self.embedding is not None:
            out["embedding"] = [round(float(v), 5) for v in self.embedding]
            out["model_id"] = self.model_id
        if sighting is not None:
            out["sighting"] = sighting
        return out


def _decision_json(decision: Decision | None) -> dict:
    if decision is None:
        return {"identity": None, "decided": False}

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {"identity": decision.name, "decided": True, "pseudo": decision.pseudo, "score": rounded(decision.score),
            "matched_on": decision.matched_on, "score_visible": rounded(decision.score_visible),
            "score_reconstructed": rounded(decision.score_reconstructed), "threshold": rounded(decision.threshold),
            "paths": list(decision.paths),
            **({"resembles": {"identity": decision.resembles, "score": rounded(decision.resembles_score)}}
               if decision.resembles else {})}


@dataclass(frozen=True)
class Sighting:
    """An event as committed to the store: its row id there, and the JSON every sink sends."""

    id: int
    event: TrackEvent
    json: dict  # ``event.to_json(id)``, made once


@dataclass(frozen=True)
class StreamStatus:
    """One stream's health at one moment: what the live view, /metrics, the terminal line and the run's
    manifest show. Taken from the source and the stream's counters when asked for, never cached, so it
    stays true when frames stop coming."""

    name: str
    live: bool
    state: str  # connecting (first attempt) | decoding | down (retrying after a failure) | ended | failed
    connected: bool
    decoded: int
    frames_out: int  # frames through the whole pipeline
    dropped: int  # live frames replaced by a newer one before analysis
    reconnects: int
    stalls: int
    decode_errors: int
    skipped_damaged: int
    connect_failures: int
    fps_in: float  # last 5 s
    fps_out: float  # last 5 s
    latency_ms: float  # mean over the latest 100 frames, decode to annotated output
    last_error: str | None  # already redacted by the source
    width: int | None
    height: int | None
    last_frame_time: float | None  # wall clock (epoch s) of the newest decoded frame; None: none yet
    last_frame_age_s: float | None  # seconds since then, at ``updated``
    updated: float  # wall clock (epoch s) when this snapshot was taken
    total_frames: int | None = None  # files and image folders: how many frames there are
