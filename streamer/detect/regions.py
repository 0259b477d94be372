"""Full-frame detection on key frames; in between, the detector searches only around the faces it
found last (DeepStream's detector ``interval`` with the tracker's regions, rather than blind frames).

Most of a CCTV frame holds no face, and a face moves a few pixels a frame: searching a square twice
its size finds it again, with fresh landmarks, for a fraction of the full frame's cost. New faces
are found on the next key frame, at most ``full_every - 1`` frames late. Streams take their key
frames in turn, so no batch carries every stream's full detection at once, and the regions of all
the streams' region frames go through the detector together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamer.records import Detections, VideoFrame
from streamer.track.iou import iou_matrix

REGION_SCALE = 2.0  # search square side / the face box's longer side (less context moved turned faces' landmarks)
DUPLICATE_IOU = 0.5  # two regions' detections this similar are one face


@dataclass
class _StreamState:
    since_full: int  # frames since this stream's last full-frame detection
    shape: tuple[int, ...]
    session: int  # the source's connection: a reconnected camera is searched in full first
    keyframe_boxes: np.ndarray  # faces found on the last key frame
    last_boxes: np.ndarray  # faces found on the previous frame


@dataclass
class _Search:
    """One region of one frame: the square cut out, and where the followed face's centre was."""

    frame: int  # index in the batch
    left: int
    top: int
    centre: tuple[float, float]  # in the cut-out's pixels


class RegionScheduler:
    def __init__(self, detector, full_every: int):
        self.detector = detector
        # Region search pays only where it is cheaper than the full frame (see each detector's supports_regions).
        self.full_every = full_every if getattr(detector, "supports_regions", False) else 1
        self._streams: dict[str, _StreamState] = {}
        self._forgotten: set[str] = set()  # streams to forget, taken by the detecting thread (it owns _streams)
        self._refresh: set[str] = set()  # streams whose next frame is searched in full (a cut: faces moved)
        self.full_frames = 0
        self.region_frames = 0

    def forget_stream(self, stream: str) -> None:
        """The stream ended: what was kept for it goes (taken by the detecting thread; safe from any thread)."""
        self._forgotten.add(stream)

    def search_in_full(self, stream: str) -> None:
        """The stream's picture changed wholesale (a shot cut, a camera jump): the faces it followed are not
        where they were, so the next frame detected is a key frame (safe from any thread; detection may be a
        batch or two ahead of tracking, so that is a few frames after the cut)."""
        self._refresh.add(stream)

    def detect(self, frames: list[VideoFrame]) -> list[Detections]:
        """Faces per frame. The regions of every region frame go to the detector in one call; a stream
        seen twice in ``frames`` has its second frame searched around what its first found."""
        while self._forgotten:
            self._streams.pop(self._forgotten.pop(), None)
        while self._refresh:
            state = self._streams.get(self._refresh.pop())
            if state is not None:
                state.since_full = self.full_every
        found: list[Detections] = []
        batch: list[VideoFrame] = []
        for frame in frames:
            if any(f.stream == frame.stream for f in batch):
                found += self._detect_round(batch)
                batch = []
            batch.append(frame)
        return found + (self._detect_round(batch) if batch else [])

    def _detect_round(self, frames: list[VideoFrame]) -> list[Detections]:
        found: list[Detections | None] = [None] * len(frames)
        searches: list[_Search] = []
        crops: list[np.ndarray] = []
        shapes: list[tuple[int, ...]] = []
        for i, frame in enumerate(frames):
            state = self._streams.get(frame.stream)
            image = frame.image
            if (self.full_every == 1 or state is None or state.shape != image.shape or state.session != frame.session
                    or state.since_full + 1 >= self.full_every or frame.image_file is not None):
                found[i] = self.detector.detect(image)
                self.full_frames += 1
                # A new stream starts its region frames at once, but its next key frame is staggered.
                since = -(len(self._streams) % self.full_every) if state is None else 0
                self._streams[frame.stream] = _StreamState(since, image.shape, frame.session, found[i].boxes,
                                                           found[i].boxes)
                continue
            for search, crop in _squares(i, image, _union(state.last_boxes, state.keyframe_boxes)):
                searches.append(search)
                crops.append(crop)
                shapes.append(image.shape)
            self.region_frames += 1
            state.since_full += 1
        per_crop = self.detector.detect_regions(crops, shapes) if crops else []
        picked: list[list[tuple[np.ndarray, float, np.ndarray]]] = [[] for _ in frames]
        for search, in_crop in zip(searches, per_crop):
            if len(in_crop):
                picked[search.frame].append(_nearest_centre(search, in_crop))
        for i, frame in enumerate(frames):
            if found[i] is None:
                found[i] = _deduplicated(picked[i])
                self._streams[frame.stream].last_boxes = found[i].boxes
        return found


def _squares(frame: int, image: np.ndarray, boxes: np.ndarray):
    """A square REGION_SCALE times each box's longer side around its centre, clipped to the image."""
    height, width = image.shape[:2]
    for x1, y1, x2, y2 in boxes:
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        half = REGION_SCALE * max(x2 - x1, y2 - y1) / 2
        left, top = int(max(0, cx - half)), int(max(0, cy - half))
        right, bottom = int(min(width, cx + half)), int(min(height, cy + half))
        if right - left >= 8 and bottom - top >= 8:
            yield _Search(frame, left, top, (cx - left, cy - top)), image[top:bottom, left:right]


def _nearest_centre(search: _Search, found: Detections) -> tuple[np.ndarray, float, np.ndarray]:
    """The face this region follows: the one nearest its centre (a neighbour reaching into the region
    is found whole by its own region), in frame pixels."""
    centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2
    k = int(np.argmin(((centres - search.centre) ** 2).sum(axis=1)))
    offset = np.array([search.left, search.top], np.float32)
    return found.boxes[k] + np.tile(offset, 2), float(found.scores[k]), found.landmarks[k] + offset


def _deduplicated(picked: list[tuple[np.ndarray, float, np.ndarray]]) -> Detections:
    """Regions that found the same face (followed faces that came close) keep its best detection."""
    if not picked:
        return Detections.empty()
    order = sorted(range(len(picked)), key=lambda i: -picked[i][1])
    kept: list[int] = []
    for i in order:
        if not kept or iou_matrix(picked[i][0][None], np.stack([picked[j][0] for j in kept])).max() < DUPLICATE_IOU:
            kept.append(i)
    return Detections(np.stack([picked[i][0] for i in kept]).astype(np.float32),
                      np.array([picked[i][1] for i in kept], np.float32),
                      np.stack([picked[i][2] for i in kept]).astype(np.float32))


def _union(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``first``'s boxes and those of ``second`` that none of them overlaps."""
    if not len(second):
        return first
    if not len(first):
        return second
    overlap = iou_matrix(second, first).max(axis=1)
    return np.concatenate([first, second[overlap < DUPLICATE_IOU]])
