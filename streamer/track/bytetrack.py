"""ByteTrack-style face tracking per stream: Kalman-predicted boxes, optimal assignment, and the
low-confidence detections used to keep existing tracks alive (never to start new ones).

Association, each frame:
1. confirmed and lost tracks against confident detections, by IoU with the predicted box;
2. tracks still unmatched against the low-confidence detections (a face half-hidden by a hand
   often scores low: it keeps its track instead of breaking it);
3. tentative tracks against the confident detections left; the rest start tentative tracks.
A track lost for more than ``max_misses`` frames ends. Appearance helps where boxes cannot: a new
track whose face matches a lost track's takes over that track's ID (``TrackEvents.reattach``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from streamer.track.iou import iou_matrix
from streamer.track.kalman import BoxKalman


@dataclass
class Track:
    track_id: int
    box: np.ndarray
    kalman: BoxKalman | None = None
    hits: int = 1
    misses: int = 0
    confirmed: bool = False
    state: Any = None  # what the event stage keeps per track (track/events.py: TrackState), once it has run


def assign(iou: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """Pairs (row, column) maximising total IoU, each at least ``min_iou``."""
    if iou.size == 0:
        return []
    rows, cols = linear_sum_assignment(-iou)
    return [(r, c) for r, c in zip(rows, cols) if iou[r, c] >= min_iou]


class ByteTracker:
    # high_score: a detection from this score starts a track; weaker ones only keep one alive. It was 0.6 (ByteTrack's
    # start score) above SCRFD's 0.5 threshold until 2026-12-04; but SCRFD scores a sixth of real tight photos and
    # 8% of masked eval probes 0.5-0.6 (benchmarks/detector_threshold.py), and such a face was never reported.
    def __init__(self, min_hits: int = 2, max_misses: int = 10, high_score: float = 0.5,
                 match_iou: float = 0.2, low_match_iou: float = 0.4):
        self.min_hits, self.max_misses = min_hits, max_misses
        self.high_score, self.match_iou, self.low_match_iou = high_score, match_iou, low_match_iou
        self.tracks: dict[int, Track] = {}
        self._next_id = 1

    def update(self, boxes: np.ndarray, scores: np.ndarray | None = None) -> tuple[list[Track | None], list[Track]]:
        """Associates this frame's (n, 4) boxes with tracks.

        Returns (per box: its confirmed track, or None while tentative or unmatched low-confidence;
        tracks that ended this frame, confirmed ones only). Ended tracks are forgotten.
        """
        scores = np.ones(len(boxes), np.float32) if scores is None else scores
        for track in self.tracks.values():
            track.box = track.kalman.predict()
        assigned: list[Track | None] = [None] * len(boxes)
        high = [d for d in range(len(boxes)) if scores[d] >= self.high_score]
        low = [d for d in range(len(boxes)) if scores[d] < self.high_score]
        established = [t for t in self.tracks.values() if t.confirmed]
        tentative = [t for t in self.tracks.values() if not t.confirmed]

        unmatched = self._match(established, high, boxes, assigned, self.match_iou)
        self._match(unmatched, low, boxes, assigned, self.low_match_iou)
        self._match(tentative, [d for d in high if assigned[d] is None], boxes, assigned, self.match_iou)
        for d in high:
            if assigned[d] is None:
                track = Track(self._next_id, boxes[d].copy(), BoxKalman(boxes[d]))
                self._next_id += 1
                self.tracks[track.track_id] = track
                assigned[d] = track
        matched = {id(t) for t in assigned if t is not None}
        ended = []
        for track in list(self.tracks.values()):
            if id(track) in matched:
                track.confirmed = track.confirmed or track.hits >= self.min_hits
                continue
            track.misses += 1
            track.kalman.stop()
            # A tentative track must not miss at all: one-frame false detections never become tracks.
            if not track.confirmed or track.misses > self.max_misses:
                del self.tracks[track.track_id]
                if track.confirmed:
                    ended.append(track)
        return [t if t is not None and t.confirmed else None for t in assigned], ended

    def _match(self, tracks: list[Track], detections: list[int], boxes: np.ndarray,
               assigned: list[Track | None], min_iou: float) -> list[Track]:
        """Assigns detections to tracks; returns the tracks left unmatched."""
        if not tracks or not detections:
            return list(tracks)
        iou = iou_matrix(boxes[detections], np.stack([t.box for t in tracks]))
        taken = set()
        for r, c in assign(iou, min_iou):
            d, track = detections[r], tracks[c]
            track.kalman.update(boxes[d])
            track.box, track.hits, track.misses = boxes[d].copy(), track.hits + 1, 0
            assigned[d] = track
            taken.add(c)
        return [t for c, t in enumerate(tracks) if c not in taken]

    def lost(self) -> list[Track]:
        """Confirmed tracks missing in this frame, still within ``max_misses``."""
        return [t for t in self.tracks.values() if t.confirmed and t.misses > 0]

    def take_over(self, new: Track, lost: Track) -> Track:
        """``lost`` continues as ``new``'s detections: the new track's ID is dropped."""
        del self.tracks[new.track_id]
        lost.kalman, lost.box = new.kalman, new.box
        lost.hits, lost.misses = lost.hits + new.hits, 0
        return lost

    def split(self, track: Track) -> Track:
        """The detections ``track`` follows are someone else's now: ``track`` is dropped (its caller ends it)
        and a new confirmed track, with a new ID, goes on from its box and motion."""
        del self.tracks[track.track_id]
        new = Track(self._next_id, track.box.copy(), track.kalman, hits=self.min_hits, confirmed=True)
        self._next_id += 1
        self.tracks[new.track_id] = new
        return new

    def close(self) -> list[Track]:
        """Ends every live track (end of stream)."""
        ended = [t for t in self.tracks.values() if t.confirmed]
        self.tracks.clear()
        return ended
