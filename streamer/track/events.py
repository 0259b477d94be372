"""Turns per-frame faces into per-track events: only when something changes."""

from __future__ import annotations

import collections
import datetime as dt
import time

import numpy as np

from streamer.records import Face, FrameResult, Match
from streamer.track.iou import IouTracker, Track

IDENTITY_WINDOW = 15  # frames of matches a track's identity is decided over
OCCLUSION_HOLD = 3  # frames a changed occlusion state must persist before it is reported


class TrackEvents:
    """Tracks one stream's faces and yields its events (plain dicts, JSON-ready)."""

    def __init__(self, stream: str, min_hits: int, max_misses: int):
        self.stream = stream
        self.tracker = IouTracker(min_hits=min_hits, max_misses=max_misses)
        self._associated: tuple[FrameResult, list[Track | None], list[Track]] | None = None

    def associate(self, result: FrameResult) -> None:
        """Gives this frame's faces their track IDs (confirmed tracks only), before the later stages run:
        they reuse per-track work (a face's reconstruction) by these IDs."""
        boxes = np.stack([f.box for f in result.faces]) if result.faces else np.zeros((0, 4), np.float32)
        tracks, ended = self.tracker.update(boxes)
        for face, track in zip(result.faces, tracks):
            if track is not None:
                face.track_id = track.track_id
        self._associated = (result, tracks, ended)

    def update(self, result: FrameResult) -> list[dict]:
        """This frame's events (associating its faces first, unless ``associate`` already did)."""
        if self._associated is None or self._associated[0] is not result:
            self.associate(result)
        _, tracks, ended = self._associated
        self._associated = None
        events = []
        for face, track in zip(result.faces, tracks):
            if track is None:
                continue
            events.extend(self._face_events(face, track, result))
        for track in ended:
            events.append(self._event("track_end", track, result, track.state.get("last_face")))
        return events

    def close(self, result: FrameResult | None) -> list[dict]:
        return [self._event("track_end", t, result, t.state.get("last_face")) for t in self.tracker.close()]

    def _face_events(self, face: Face, track: Track, result: FrameResult) -> list[dict]:
        state = track.state
        votes = state.setdefault("votes", collections.deque(maxlen=IDENTITY_WINDOW))
        votes.append((face.match.identity, face.match.score) if face.match else (None, 0.0))
        identity, score = _decide(votes)
        face.match = Match(identity, score)  # what the operator sees is the track's decision, not one frame's
        state["last_face"] = face
        events = []
        if not state.get("started"):
            state["started"] = True
            events.append(self._event("track_start", track, result, face))
        if state.get("identity", "-") != identity:
            state["identity"] = identity
            events.append(self._event("identity", track, result, face))
        occluded = bool(face.occlusion and face.occlusion.occluded)
        if "occluded" not in state:
            state["occluded"], state["occlusion_streak"] = occluded, 0
        # Report a change only once it holds for a few frames: one frame's segmentation noise is not news.
        state["occlusion_streak"] = state["occlusion_streak"] + 1 if occluded != state["occluded"] else 0
        if state["occlusion_streak"] >= OCCLUSION_HOLD:
            state["occluded"], state["occlusion_streak"] = occluded, 0
            events.append(self._event("occlusion", track, result, face))
        return events

    def _event(self, kind: str, track: Track, result: FrameResult | None, face: Face | None) -> dict:
        frame = result.frame if result else None
        event = {
            "type": kind,
            "stream": self.stream,
            "track_id": track.track_id,
            "frame": frame.index if frame else None,
            "pts_s": round(frame.pts_s, 3) if frame and frame.pts_s is not None else None,
            **({"image_file": frame.image_file} if frame and frame.image_file else {}),
            "time": dt.datetime.fromtimestamp(frame.wall_time if frame else time.time(), dt.timezone.utc).isoformat(
                timespec="milliseconds"
            ),
        }
        if face is not None:
            occ = face.occlusion
            event.update(
                box=[round(float(v), 1) for v in face.box],
                identity=face.match.identity if face.match else None,
                score=round(face.match.score, 3) if face.match else None,
                occluded=bool(occ and occ.occluded),
                occluders=list(occ.classes) if occ else [],
                occluded_fraction=round(occ.fraction, 3) if occ else 0.0,
                reconstructed=face.reconstructed,
            )
        return event


def _decide(votes) -> tuple[str | None, float]:
    """The identity with the largest summed score over the window, and its mean score."""
    totals: dict[str | None, list[float]] = {}
    for identity, score in votes:
        totals.setdefault(identity, []).append(score)
    known = {k: v for k, v in totals.items() if k is not None}
    # Unknown frames only win when no identity was matched in most of the window.
    if known and sum(len(v) for v in known.values()) * 2 >= len(votes):
        best = max(known, key=lambda k: sum(known[k]))
        return best, sum(known[best]) / len(known[best])
    scores = [s for _, s in votes]
    return None, sum(scores) / len(scores)
