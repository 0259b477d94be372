"""Turns per-frame faces into per-track events: only when something changes.

Events (``EventKind``): ``track_start`` (a face track is confirmed), ``identity`` (its identity was
decided or changed), ``occlusion`` (its occluders appeared or cleared, held for a few frames) and
``track_end``. Each carries stream, track, time, the face (box, occluders, whether reconstructed)
and the track's decision (identity, score, which embedding matched).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from streamer.identify.quality import assess_face
from streamer.identify.track_identity import IdentityResolver, TrackIdentity
from streamer.records import EventKind, Face, FaceSeen, FrameResult, TrackEvent
from streamer.track.appearance import AppearanceGuard
from streamer.track.bytetrack import ByteTracker, Track
from streamer.track.cuts import CutDetector

OCCLUSION_HOLD = 3  # frames a changed occlusion state must persist before it is reported


@dataclass
class TrackState:
    """What the event stage keeps about one confirmed track (``Track.state``)."""

    identity: TrackIdentity
    last_face: Face | None = None
    occluded: bool | None = None  # the occlusion state last reported (None: nothing reported yet)
    occlusion_streak: int = 0  # frames the face's occlusion has differed from ``occluded``
    appearance: AppearanceGuard = field(default_factory=AppearanceGuard)

    @property
    def named(self) -> bool:
        decision = self.identity.decision
        return bool(decision and decision.name)


class TrackEvents:
    """Tracks one stream's faces, decides who each track is, and yields its events."""

    def __init__(self, stream: str, resolver: IdentityResolver, min_hits: int, max_misses: int,
                 reattach_similarity: float | None = None, event_embeddings: bool = False, stills: bool = False,
                 scene_cuts: bool = True, appearance_check: bool = True, start_score: float = 0.5):
        self.stream, self.resolver = stream, resolver
        self.tracker = ByteTracker(min_hits=min_hits, max_misses=max_misses, high_score=start_score)
        # Every image of a folder is its own scene already; a video's cut ends its tracks (track/cuts.py).
        self.cuts = CutDetector() if scene_cuts and not stills else None
        self.cuts_seen = 0
        self.reattach_similarity = reattach_similarity
        self.event_embeddings = event_embeddings
        self.stills = stills  # every image its own track: decide on one face
        self.reattached = 0
        self.appearance_check = appearance_check and not stills
        self.appearance_splits = 0
        self._associated: tuple[FrameResult, list[Track | None], list[Track]] | None = None
        self._absorbed: list[int] = []

    @property
    def open_tracks(self) -> int:
        return len(self.tracker.tracks)

    def associate(self, result: FrameResult) -> None:
        """Gives this frame's faces their track IDs (confirmed tracks only), before the later stages run:
        they reuse per-track work (a face's reconstruction) by these IDs."""
        faces = result.faces
        cut_ended = []
        if self.cuts is not None and self.cuts.is_cut(result.frame.image):
            self.cuts_seen += 1
            cut_ended = self.tracker.close()  # nobody is carried across a cut by where their box was
        boxes = np.stack([f.box for f in faces]) if faces else np.zeros((0, 4), np.float32)
        tracks, ended = self.tracker.update(boxes, np.array([f.score for f in faces], np.float32))
        ended = cut_ended + ended
        for face, track in zip(faces, tracks):
            if track is not None:
                face.track_id = track.track_id
                # A face that may be someone else's is analysed on every frame, as an unnamed track's is.
                face.track_named = track.state is not None and track.state.named \
                    and not track.state.appearance.doubting
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
            if track.state is None and self.reattach_similarity is not None:
                track = self._reattach(track, face)
            elif track.state is not None and self.appearance_check and self._someone_else(track.state, face):
                events.append(self._end(track, result))
                track = self.tracker.split(track)
                face.track_id, face.track_named = track.track_id, False
                self.appearance_splits += 1
                if self.reattach_similarity is not None:  # two faces crossing: it may be the other's lost track
                    track = self._reattach(track, face)
            events.extend(self._face_events(face, track, result))
        for track in ended:
            events.append(self._end(track, result))
        return events

    def close(self, result: FrameResult | None) -> list[TrackEvent]:
        """Ends every open track (the stream ended, went down or changed resolution)."""
        if self.cuts is not None:
            self.cuts.reset()  # the next picture (a reconnection's) is compared with nothing
        return [self._end(t, result) for t in self.tracker.close()]

    def take_absorbed(self) -> list[int]:
        """Track IDs that ended by joining a lost track (reattached) since the last call: their per-track
        memories are forgotten like those of ended tracks."""
        absorbed, self._absorbed = self._absorbed, []
        return absorbed

    def _someone_else(self, state: TrackState, face: Face) -> bool:
        usable = face.embedding is not None and assess_face(face, self.resolver.config.quality).passed
        return state.appearance.someone_else(state.identity, face, self.resolver.base_threshold, usable)

    def _reattach(self, track: Track, face: Face) -> Track:
        """A just-confirmed track whose face is a lost track's continues that track (same ID)."""
        probe = face.reconstruction_embedding if face.reconstruction_embedding is not None else face.embedding
        if probe is None:
            return track
        # Never below the naming threshold: a lost track is continued only by a face that would be named as the
        # same person. With dlib's descriptor, whose different people score 0.78-0.90, a fixed 0.6 would hand a
        # lost track to anyone who shows up near it.
        best, best_similarity = None, max(self.reattach_similarity, self.resolver.base_threshold)
        for lost in self.tracker.lost():
            state: TrackState | None = lost.state
            if state is None or not state.identity.samples:
                continue
            visible, _, reconstruction = state.identity.aggregate()
            reference = reconstruction if reconstruction is not None and face.reconstruction_embedding is not None \
                else visible
            similarity = float(probe @ reference)
            if similarity >= best_similarity:
                best, best_similarity = lost, similarity
        if best is None:
            return track
        self.reattached += 1
        self._absorbed.append(track.track_id)
        continued = self.tracker.take_over(track, best)
        continued.state.appearance.strikes = 0  # this face was just found to be its person's
        face.track_id = continued.track_id
        return continued

    def _face_events(self, face: Face, track: Track, result: FrameResult) -> list[TrackEvent]:
        starting = track.state is None
        if starting:
            track.state = TrackState(self.resolver.new_track())
        state: TrackState = track.state
        before = state.identity.decision
        if state.appearance.doubting:
            # A face that may be someone else's is kept out of the track's evidence, is not shown under its name,
            # and is not the face its events report.
            face.match = None
            return []
        decision = self.resolver.observe(state.identity, face, min_frames=1 if self.stills else None)
        face.match = decision.match if decision and decision.name else None
        state.last_face = face
        events = [self._event(EventKind.TRACK_START, track, result, face)] if starting else []
        if decision is not None and (before is None or before.name != decision.name):
            events.append(self._event(EventKind.IDENTITY, track, result, face, with_face=True))
        occluded = bool(face.occlusion and face.occlusion.occluded)
        if state.occluded is None:
            state.occluded = occluded
        # Report a change only once it holds for a few frames: one frame's segmentation noise is not news.
        state.occlusion_streak = state.occlusion_streak + 1 if occluded != state.occluded else 0
        if state.occlusion_streak >= OCCLUSION_HOLD:
            state.occluded, state.occlusion_streak = occluded, 0
            events.append(self._event(EventKind.OCCLUSION, track, result, face))
        return events

    def _end(self, track: Track, result: FrameResult | None) -> TrackEvent:
        state: TrackState | None = track.state
        if state is not None:
            self.resolver.track_ended(state.identity, f"track {self.stream}:{track.track_id}")
        return self._event(EventKind.TRACK_END, track, result, state.last_face if state else None)

    def _event(self, kind: EventKind, track: Track, result: FrameResult | None, face: Face | None,
               with_face: bool = False) -> TrackEvent:
        frame = result.frame if result else None
        state: TrackState | None = track.state
        identity = state.identity if state else None
        crop = embedding = model_id = synthetic = None
        if with_face and identity is not None and identity.samples:
            visible, _, reconstruction = identity.aggregate()
            embedding = reconstruction if reconstruction is not None else visible
            crop, model_id = identity.best_crop, self.resolver.index.model_id
            synthetic = identity.best_reconstruction
        return TrackEvent(
            kind=kind, stream=self.stream, track_id=track.track_id,
            time=frame.wall_time if frame else time.time(),
            frame=frame.index if frame else None, pts_s=frame.pts_s if frame else None,
            image_file=frame.image_file if frame else None,
            face=FaceSeen.of(face) if face is not None else None,
            decision=identity.decision if identity else None,
            faces_used=identity.usable if identity else None,
            unusable_because=identity.last_reason if identity and identity.usable == 0 else None,
            crop=crop, embedding=embedding, model_id=model_id, embedding_in_json=self.event_embeddings,
            reconstruction=synthetic,
        )
