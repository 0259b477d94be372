"""A greedy IoU tracker per stream: stable face IDs across frames and brief misses.

The re-identification issue replaces this with ByteTrack-style association
helped by embeddings; the interface (``update`` -> track IDs, ``ended``) stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of xyxy boxes."""
    a = a[:, None, :]
    b = b[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-6)


@dataclass
class Track:
    track_id: int
    box: np.ndarray
    hits: int = 1
    misses: int = 0
    confirmed: bool = False
    state: dict = field(default_factory=dict)  # what later stages remember per track (identity votes, last event)


class IouTracker:
    def __init__(self, iou_threshold: float = 0.3, min_hits: int = 2, max_misses: int = 15):
        if not 0 < iou_threshold < 1:
            raise ValueError(f"iou_threshold must be in (0, 1), got {iou_threshold}")
        self.iou_threshold = iou_threshold
        self.min_hits = min_hits
        self.max_misses = max_misses
        self.tracks: dict[int, Track] = {}
        self._next_id = 1

    def update(self, boxes: np.ndarray) -> tuple[list[Track | None], list[Track]]:
        """Associates this frame's (n, 4) boxes with tracks.

        Returns (per box: its confirmed track or None while still tentative,
        tracks that ended this frame). Ended tracks are forgotten, so state
        never grows without bound.
        """
        ids = list(self.tracks)
        assigned: list[Track | None] = [None] * len(boxes)
        matched_tracks: set[int] = set()
        if ids and len(boxes):
            iou = iou_matrix(boxes, np.stack([self.tracks[i].box for i in ids]))
            for flat in np.argsort(-iou, axis=None):
                d, t = np.unravel_index(flat, iou.shape)
                if iou[d, t] < self.iou_threshold:
                    break
                if assigned[d] is not None or ids[t] in matched_tracks:
                    continue
                track = self.tracks[ids[t]]
                track.box, track.hits, track.misses = boxes[d], track.hits + 1, 0
                matched_tracks.add(track.track_id)
                assigned[d] = track
        for d, box in enumerate(boxes):
            if assigned[d] is None:
                track = Track(self._next_id, box)
                self._next_id += 1
                self.tracks[track.track_id] = track
                assigned[d] = track
                matched_tracks.add(track.track_id)
        ended = []
        for track_id in ids:
            if track_id not in matched_tracks:
                track = self.tracks[track_id]
                track.misses += 1
                if track.misses > self.max_misses:
                    ended.append(self.tracks.pop(track_id))
        for track in assigned:
            track.confirmed = track.confirmed or track.hits >= self.min_hits
        return [t if t.confirmed else None for t in assigned], [t for t in ended if t.confirmed]

    def close(self) -> list[Track]:
        """Ends every live track (end of stream)."""
        ended = [t for t in self.tracks.values() if t.confirmed]
        self.tracks.clear()
        return ended
