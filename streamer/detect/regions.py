"""Full-frame detection on key frames; in between, the detector searches only around the faces it
found last (DeepStream's detector ``interval`` with the tracker's regions, rather than blind frames).

Most of a CCTV frame holds no face, and a face moves a few pixels a frame: searching a square 1.6 times
its size finds it again, with fresh landmarks, for a fraction of the full frame's cost. New faces
are found on the next key frame, at most ``full_every - 1`` frames late. Streams take their key
frames in turn, so no batch carries every stream's full detection at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamer.records import Detections, VideoFrame
from streamer.track.iou import iou_matrix

REGION_SCALE = 1.6  # search square side / the face box's longer side
DUPLICATE_IOU = 0.5  # two regions' detections this similar are one face


@dataclass
class _StreamState:
    since_full: int  # frames since this stream's last full-frame detection
    shape: tuple[int, ...]
    keyframe_boxes: np.ndarray  # faces found on the last key frame
    last_boxes: np.ndarray  # faces found on the previous frame


class RegionScheduler:
    def __init__(self, detector, full_every: int):
        self.detector = detector
        # Region search pays only where it is cheaper than the full frame (see each detector's supports_regions).
        self.full_every = full_every if getattr(detector, "supports_regions", False) else 1
        self._streams: dict[str, _StreamState] = {}
        self.full_frames = 0
        self.region_frames = 0

    def detect(self, frame: VideoFrame) -> Detections:
        image = frame.image
        state = self._streams.get(frame.stream)
        full = (self.full_every == 1 or state is None or state.shape != image.shape
                or state.since_full + 1 >= self.full_every or frame.image_file is not None)
        if full:
            found = self.detector.detect(image)
            self.full_frames += 1
            # A new stream starts its region frames at once, but its next key frame is staggered.
            since = -(len(self._streams) % self.full_every) if state is None else 0
            self._streams[frame.stream] = _StreamState(since, image.shape, found.boxes, found.boxes)
            return found
        regions = _union(state.last_boxes, state.keyframe_boxes)
        found = self._in_regions(image, regions)
        self.region_frames += 1
        state.since_full += 1
        state.last_boxes = found.boxes
        return found

    def _in_regions(self, image: np.ndarray, boxes: np.ndarray) -> Detections:
        height, width = image.shape[:2]
        picked: list[tuple[np.ndarray, float, np.ndarray]] = []
        for x1, y1, x2, y2 in boxes:
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            half = REGION_SCALE * max(x2 - x1, y2 - y1) / 2
            left, top = int(max(0, cx - half)), int(max(0, cy - half))
            right, bottom = int(min(width, cx + half)), int(min(height, cy + half))
            if right - left < 8 or bottom - top < 8:
                continue
            found = self.detector.detect_region(image[top:bottom, left:right], image.shape)
            if not len(found):
                continue
            # The face this region follows is the one nearest its centre; a neighbour reaching into
            # the region is found whole by its own region.
            centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2
            k = int(np.argmin(((centres - [cx - left, cy - top]) ** 2).sum(axis=1)))
            offset = np.array([left, top], np.float32)
            picked.append((found.boxes[k] + np.tile(offset, 2), float(found.scores[k]), found.landmarks[k] + offset))
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
