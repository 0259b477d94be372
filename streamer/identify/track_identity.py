"""Who a face track is: quality-gated embeddings aggregated over its frames, matched on what the
camera saw and on the reconstruction, with the decision saying which one matched and by how much.

Unknown faces seen long enough become pseudo-identities (``unknown-00042``) in the store, so the
same stranger is recognised again later; an operator can name them or reject a sighting.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np
from pydantic import Field, model_validator

from streamer.config_base import StrictModel
from streamer.embed.vectors import l2_normalise
from streamer.identify.calibration import held_threshold
from streamer.identify.gallery import GalleryConfig, GalleryIndex
from streamer.identify.quality import QualityConfig, assess_face
from streamer.records import Decision, Face
from streamer.store.database import StoreUnavailable, say_unavailable
from streamer.store.gallery import GalleryStore


class IdentityConfig(StrictModel):
    quality: QualityConfig = QualityConfig()
    window: int = Field(30, ge=1, le=1000, description="a track's most recent usable faces that are aggregated")
    min_frames: int = Field(3, ge=1, le=100, description="usable faces before a track's identity is decided")
    pseudo_identities: bool = Field(True, description="keep unknown faces as persistent pseudo-identities")
    pseudo_min_frames: int = Field(5, ge=1, le=1000, description="usable faces before an unknown becomes one")
    pseudo_faces: int = Field(10, ge=1, le=100, description="faces a pseudo-identity keeps (the latest tracks')")
    # Both margins are plain cosines; a gallery compared in its own frame (gallery.frame) widens them as much as
    # its scores spread wider than plain cosines (GalleryIndex.score_scale), so they keep their meaning there.
    hold_margin: float = Field(0.05, ge=0, le=1, description="a decided person is kept while the score stays "
                               "within this of the threshold (a plain cosine)")
    pseudo_link_margin: float = Field(0.1, ge=0, le=1, description="a new pseudo-identity within this of the "
                                      "threshold of another says it resembles it (events, audit log; a plain cosine)")

    @model_validator(mode="after")
    def _counts_fit_the_window(self):
        # A track aggregates at most ``window`` faces: a count above it could never be reached.
        for key in ("min_frames", "pseudo_min_frames"):
            if getattr(self, key) > self.window:
                raise ValueError(f"{key} ({getattr(self, key)}) must be at most window ({self.window})")
        return self


@dataclass
class _Sample:
    weight: float
    visible: np.ndarray
    visible_weights: np.ndarray | None
    reconstruction: np.ndarray | None
    occluders: tuple[str, ...]


@dataclass
class TrackIdentity:
    """One track's evidence and decision."""

    samples: collections.deque = field(default_factory=collections.deque)
    frames: int = 0
    usable: int = 0
    best_weight: float = -1.0
    best_crop: np.ndarray | None = None  # the sharpest, largest, most frontal face of the track
    best_reconstruction: np.ndarray | None = None  # that face with its occluded pixels synthesised, if it was
    last_reason: str | None = None  # why the last face was not usable
    decision: Decision | None = None
    pseudo_id: int | None = None  # the pseudo-identity this track made

    def aggregate(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(visible mean, its per-dimension weights or None, reconstruction mean or None)."""
        weights = np.array([s.weight for s in self.samples])[:, None]
        visible = np.stack([s.visible for s in self.samples])
        if all(s.visible_weights is None for s in self.samples):
            mean, seen = (weights * visible).sum(0), None
        else:
            dims = np.stack([s.visible_weights if s.visible_weights is not None else np.ones_like(s.visible)
                             for s in self.samples]) * weights
            mean = (dims * visible).sum(0) / np.maximum(dims.sum(0), 1e-12)
            seen = dims.sum(0) / max(dims.sum(0).max(), 1e-12)
        recon = [(s.weight, s.reconstruction) for s in self.samples if s.reconstruction is not None]
        recon_mean = sum(w * v for w, v in recon) if recon else None
        return (l2_normalise(mean[None])[0], seen,
                l2_normalise(recon_mean[None])[0] if recon_mean is not None else None)

    def occluders(self) -> tuple[str, ...]:
        """Occluder classes on at least a third of the aggregated faces."""
        counts = collections.Counter(c for s in self.samples for c in s.occluders)
        return tuple(sorted(c for c, n in counts.items() if 3 * n >= len(self.samples)))


class IdentityResolver:
    """Shared by all streams: the gallery index, the store and the rules."""

    def __init__(self, index: GalleryIndex, gallery: GalleryConfig, config: IdentityConfig, base_threshold: float,
                 store: GalleryStore | None = None, seen_path: str = "visible",
                 reconstruction_for: tuple[str, ...] | None = None):
        self.index, self.gallery, self.config = index, gallery, config
        self.seen_path = seen_path  # what embedded the face as the camera saw it: "visible" or its "student"
        self.reconstruction_for = reconstruction_for  # occluders matched on their reconstruction; None: all
        self.base_threshold = base_threshold
        self.store = store

    def threshold(self, comparisons_per_identity: int = 1, base: float | None = None) -> float:
        """The score that names a face now: the fixed threshold (or ``base``: an occluder class's), raised as
        the gallery grows to hold ``gallery.false_accept_rate`` (identify/calibration.py); a face matched on its
        reconstruction as well is compared twice with each identity."""
        fixed = self.index.fixed_threshold(self.base_threshold if base is None else base)
        return held_threshold(fixed, self.index.impostors(), len(self.index), self.gallery.false_accept_rate,
                              comparisons_per_identity)

    def plain_threshold(self, comparisons_per_identity: int, occluders: tuple[str, ...]) -> float:
        """What ``threshold`` would be as plain cosines, frame or not: the fixed (or the occluders' own) threshold,
        raised by how this gallery's people score as plain cosines."""
        return held_threshold(self.gallery.threshold_for(occluders, self.base_threshold), self.index.plain_impostors(),
                              len(self.index), self.gallery.false_accept_rate, comparisons_per_identity)

    def _uses_reconstruction(self, occluders: tuple[str, ...]) -> bool:
        return self.reconstruction_for is None or any(c in self.reconstruction_for for c in occluders)

    def new_track(self) -> TrackIdentity:
        return TrackIdentity(samples=collections.deque(maxlen=self.config.window))

    def observe(self, state: TrackIdentity, face: Face, min_frames: int | None = None) -> Decision | None:
        """Adds one face of the track; returns the track's decision (None while undecided)."""
        if face.embedding is None:
            return state.decision  # not analysed on this frame: it carries its track's last analysis
        state.frames += 1
        quality = assess_face(face, self.config.quality)
        if quality.passed and face.embedding is not None:
            state.usable += 1
            occluders = face.occlusion.classes if face.occlusion else ()
            state.samples.append(_Sample(max(quality.weight, 1e-3), face.embedding, face.visible_weights,
                                         face.reconstruction_embedding, occluders))
            if quality.weight > state.best_weight:
                state.best_weight, state.best_crop = quality.weight, face.crop.image
                # a copy: an inpainter may hand out views of a buffer its next batch overwrites
                state.best_reconstruction = None if face.reconstruction is None else face.reconstruction.copy()
            state.decision = self._decide(state, min_frames or self.config.min_frames)
        else:
            state.last_reason = quality.reason
        return state.decision

    def _decide(self, state: TrackIdentity, min_frames: int) -> Decision | None:
        if len(state.samples) < min(min_frames, self.config.window):
            return state.decision
        visible, seen, reconstruction = state.aggregate()
        occluders = state.occluders()
        if not self._uses_reconstruction(occluders):
            reconstruction = None  # shown on the video, marked SYNTHETIC, but it lowers identity for these occluders
        paths = (self.seen_path, *(("reconstruction",) if reconstruction is not None else ()))
        # A class's own threshold may be lower than the fixed one, but never below what holds the false accepts.
        threshold = self.threshold(len(paths), self.gallery.threshold_for(occluders, self.base_threshold))
        identities, visible_scores = self.index.scores(visible[None], None if seen is None else seen[None])
        if reconstruction is not None:
            _, reconstructed_scores = self.index.scores(reconstruction[None])
        else:
            reconstructed_scores = None
        visible_scores = visible_scores[0]
        reconstructed_scores = reconstructed_scores[0] if reconstructed_scores is not None else None
        combined = visible_scores if reconstructed_scores is None else np.maximum(visible_scores, reconstructed_scores)
        pseudo = np.array([self.index.kinds[int(i)] == "pseudo" for i in identities], bool)

        def decided(column: int) -> Decision:
            identity = int(identities[column])
            on_reconstruction = reconstructed_scores is not None and \
                reconstructed_scores[column] > visible_scores[column]
            return Decision(identity, self.index.names[identity], bool(pseudo[column]), float(combined[column]),
                            "reconstruction" if on_reconstruction else self.seen_path, float(visible_scores[column]),
                            float(reconstructed_scores[column]) if reconstructed_scores is not None else None,
                            threshold, occluders, paths)

        # Enrolled people win over pseudo-identities: a stranger's pseudo-identity, made from the track's
        # own faces, would otherwise always outscore the person an operator enrolled later.
        for kind in (~pseudo, pseudo):
            if kind.any():
                column = int(np.where(kind, combined, -np.inf).argmax())
                if combined[column] >= threshold:
                    return decided(column)
            held = state.decision
            if kind is not pseudo and held is not None and held.identity_id is not None and not held.pseudo:
                # Hysteresis: a decided person is kept while the score stays near the threshold.
                column = np.flatnonzero(identities == held.identity_id)
                margin = self.config.hold_margin * self.index.score_scale()
                if len(column) and combined[column[0]] >= threshold - margin:
                    return decided(int(column[0]))
        person_before = state.decision is not None and state.decision.name is not None and not state.decision.pseudo
        if state.pseudo_id is None and not person_before and self._may_make_pseudo(state, min_frames):
            vector = reconstruction if reconstruction is not None else visible
            # Not the same stranger by the threshold, but close to one: a new pseudo-identity is made, and says
            # which one it resembles (the same person far and near, in other light), for an operator to merge.
            resembles = None
            if pseudo.any():
                column = int(np.where(pseudo, combined, -np.inf).argmax())
                if combined[column] >= threshold - self.config.pseudo_link_margin * self.index.score_scale():
                    resembles = (self.index.names[int(identities[column])], float(combined[column]))
            try:
                # Another run (another machine) may have met the same stranger a moment ago: its pseudo-identity,
                # perhaps not yet in this index, is taken rather than a second one made.
                # The store compares plain cosines: in a frame, the threshold as plain cosines says "the same face".
                same = threshold if self.index.frame() is None else self.plain_threshold(len(paths), occluders)
                identity, name, made = self.store.create_pseudo(vector, state.best_crop, self.index.model_id,
                                                                "pseudo-identity", same_above=same,
                                                                resembles=resembles)
            except StoreUnavailable as exc:
                say_unavailable(exc, "no pseudo-identity is made until it answers")
            else:
                if made:
                    state.pseudo_id = identity  # it holds this track's face already (track_ended)
                self.index.add(identity, name, True, vector)  # the store's own rows replace it at the next sync
                return Decision(identity, name, True, None, "reconstruction" if reconstruction is not None
                                else self.seen_path, None, None, threshold, occluders, paths,
                                *(resembles if made and resembles and resembles[0] != name else (None, None)))
        best_visible = float(visible_scores.max()) if visible_scores.size else None
        best_reconstructed = float(reconstructed_scores.max()) if reconstructed_scores is not None and \
            reconstructed_scores.size else None
        return Decision(None, None, False, float(combined.max()) if combined.size else None, None, best_visible,
                        best_reconstructed, threshold, occluders, paths)

    def _may_make_pseudo(self, state: TrackIdentity, min_frames: int) -> bool:
        needed = min(self.config.pseudo_min_frames, self.config.window) if min_frames > 1 else 1
        return self.config.pseudo_identities and self.store is not None and state.usable >= needed

    def track_ended(self, state: TrackIdentity, track_key: str) -> None:
        """A pseudo-identity follows its face over time: the ended track's aggregate joins it."""
        decision = state.decision
        if not (decision and decision.pseudo and self.store and state.samples and state.best_crop is not None):
            return
        if decision.identity_id == state.pseudo_id:
            return  # the pseudo-identity was made from this very track: it holds its face already
        visible, _, reconstruction = state.aggregate()
        vector = reconstruction if reconstruction is not None and self._uses_reconstruction(state.occluders()) \
            else visible
        try:
            self.store.add_face(decision.identity_id, state.best_crop, track_key, self.index.model_id, vector,
                                keep_latest=self.config.pseudo_faces)
        except StoreUnavailable as exc:
            say_unavailable(exc, "the track's face does not join its pseudo-identity")
            return
        self.index.add(decision.identity_id, decision.name, True, vector)
