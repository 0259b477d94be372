"""Turns per-frame faces into per-track events: only when something changes.

Events: ``track_start`` (a face track is confirmed), ``identity`` (its identity was decided or
changed), ``occlusion`` (its occluders appeared or cleared, held for a few frames) and
``track_end``. Each carries stream, track, time, identity, score, which embedding matched
(``matched_on``), the occluder classes, occluded fraction and ``reconstructed``.
"""

from __future__ import annotations

import datetime as dt
import time

import numpy as np

from streamer.identify.track_identity import Decision, IdentityResolver, TrackIdentity
from streamer.records import Face, FrameResult, TrackEvent
from streamer.track.bytetrack import ByteTracker, Track

OCCLUSION_HOLD = 3  # frames a changed occlusion state must persist before it is reported


class TrackEvents:
    """Tracks one stream's faces, decides who each track is, and yields its events."""

    def __init__(self, stream: str, resolver: IdentityResolver, min_hits: int, max_misses: int,
                 reattach_similarity: float | None = None, event_embeddings: bool = False, stills: bool = False):
        self.stream, self.resolver = stream, resolver
        self.tracker = ByteTracker(min_hits=min_hits, max_misses=max_misses)
        self.reattach_similarity = reattach_similarity
        self.event_embeddings = event_embeddings
        self.stills = stills  # every image its own track: decide on one face
        self.reattached = 0
        self._associated: tuple[FrameResult, list[Track | None], list[Track]] | None = None

    def associate(self, result: FrameResult) -> None:
        """Gives this frame's faces their track IDs (confirmed tracks only), before the later stages run:
        they reuse per-track work (a face's reconstruction) by these IDs."""
        faces = result.faces
        boxes = np.stack([f.box for f in faces]) if faces else np.zeros((0, 4), np.float32)
        tracks, ended = self.tracker.update(boxes, np.array([f.score for f in faces], np.float32))
        for face, track in zip(faces, tracks):
            if track is not None:
                face.track_id = track.track_id
                identity: TrackIdentity | None = track.state.get("identity")
                face.track_named = bool(identity and identity.decision and identity.decision.name)
        self._associated = (result, tracks, ended)

    def update(self, result: FrameResult) -> list[TrackEvent]:
        """This frame's events (associating its faces first, unless ``associate`` already did)."""
        if self._associated is None or self._associated[0] is not result:
            self.associate(result)
        _, tracks, ended = self._associated
        self._associated = None
        events = []
        for face, track in zip(result.faces, tracks):
            if track is None:
                continue
            if not track.state and self.reattach_similarity is not None:
                track = self._reattach(track, face)
            events.extend(self._face_events(face, track, result))
        for track in ended:
            events.append(self._end(track, result))
        return events

    def close(self, result: FrameResult | None) -> list[TrackEvent]:
        return [self._end(t, result) for t in self.tracker.close()]

    def _reattach(self, track: Track, face: Face) -> Track:
        """A just-confirmed track whose face is a lost track's continues that track (same ID)."""
        probe = face.reconstruction_embedding if face.reconstruction_embedding is not None else face.embedding
        if probe is None:
            return track
        best, best_similarity = None, self.reattach_similarity
        for lost in self.tracker.lost():
            identity: TrackIdentity | None = lost.state.get("identity")
            if identity is None or not identity.samples:
                continue
            visible, _, reconstruction = identity.aggregate()
            reference = reconstruction if reconstruction is not None and face.reconstruction_embedding is not None \
                else visible
            similarity = float(probe @ reference)
            if similarity >= best_similarity:
                best, best_similarity = lost, similarity
        if best is None:
            return track
        self.reattached += 1
        continued = self.tracker.take_over(track, best)
        face.track_id = continued.track_id
        return continued

    def _face_events(self, face: Face, track: Track, result: FrameResult) -> list[TrackEvent]:
        state = track.state
        identity: TrackIdentity = state.setdefault("identity", self.resolver.new_track())
        before = identity.decision
        decision = self.resolver.observe(identity, face, min_frames=1 if self.stills else None)
        face.match = decision.match if decision and decision.name else None
        state["last_face"] = face
        events = []
        if not state.get("started"):
            state["started"] = True
            events.append(self._event("track_start", track, result, face))
        if decision is not None and (before is None or before.name != decision.name):
            events.append(self._event("identity", track, result, face, with_face=True))
        occluded = bool(face.occlusion and face.occlusion.occluded)
        if "occluded" not in state:
            state["occluded"], state["occlusion_streak"] = occluded, 0
        # Report a change only once it holds for a few frames: one frame's segmentation noise is not news.
        state["occlusion_streak"] = state["occlusion_streak"] + 1 if occluded != state["occluded"] else 0
        if state["occlusion_streak"] >= OCCLUSION_HOLD:
            state["occluded"], state["occlusion_streak"] = occluded, 0
            events.append(self._event("occlusion", track, result, face))
        return events

    def _end(self, track: Track, result: FrameResult | None) -> TrackEvent:
        identity: TrackIdentity | None = track.state.get("identity")
        if identity is not None:
            self.resolver.track_ended(identity, f"track {self.stream}:{track.track_id}")
        return self._event("track_end", track, result, track.state.get("last_face"))

    def _event(self, kind: str, track: Track, result: FrameResult | None, face: Face | None,
               with_face: bool = False) -> TrackEvent:
        frame = result.frame if result else None
        wall_time = frame.wall_time if frame else time.time()
        identity: TrackIdentity | None = track.state.get("identity")
        decision: Decision | None = identity.decision if identity else None
        fields = {
            "type": kind,
            "stream": self.stream,
            "track_id": track.track_id,
            "frame": frame.index if frame else None,
            "pts_s": round(frame.pts_s, 3) if frame and frame.pts_s is not None else None,
            **({"image_file": frame.image_file} if frame and frame.image_file else {}),
            "time": dt.datetime.fromtimestamp(wall_time, dt.timezone.utc).isoformat(timespec="milliseconds"),
        }
        if face is not None:
            occ = face.occlusion
            fields["box"] = [round(float(v), 1) for v in face.box]
            fields.update(_decision_fields(decision))
            fields.update(
                occluded=bool(occ and occ.occluded),
                occluders=list(occ.classes) if occ else [],
                occluded_fraction=round(occ.fraction, 3) if occ else 0.0,
                reconstructed=face.reconstructed,
            )
        if identity is not None:
            fields["faces_used"] = identity.usable
            if identity.usable == 0 and identity.last_reason:
                fields["unusable_because"] = identity.last_reason
        event = TrackEvent(fields, wall_time, identity_id=decision.identity_id if decision else None)
        if with_face and identity is not None and identity.samples:
            visible, _, reconstruction = identity.aggregate()
            event.embedding = reconstruction if reconstruction is not None else visible
            event.crop, event.model_id = identity.best_crop, self.resolver.index.model_id
            if self.event_embeddings:
                fields["embedding"] = [round(float(v), 5) for v in event.embedding]
                fields["model_id"] = event.model_id
        return event


def _decision_fields(decision: Decision | None) -> dict:
    if decision is None:
        return {"identity": None, "decided": False}

    def rounded(value):
        return None if value is None else round(value, 3)

    return {
        "identity": decision.name,
        "decided": True,
        "pseudo": decision.pseudo,
        "score": rounded(decision.score),
        "matched_on": decision.matched_on,
        "score_visible": rounded(decision.score_visible),
        "score_reconstructed": rounded(decision.score_reconstructed),
        "threshold": rounded(decision.threshold),
    }
