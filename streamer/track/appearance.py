"""Appearance before position: a track is continued only by a face that looks like the faces it already holds.

Boxes are associated by where they are (bytetrack.py). When two faces cross, or a camera's view jumps without a
cut, the box can be handed to someone else; the track would then carry its name onto the wrong person. Each
analysed face of a track is compared with the track's own faces under the same occluders (a mask put on changes
what the camera sees of the same person): a usable face below the naming threshold and far below the track's
own consistency, two analysed faces in a row, belongs to someone else, and the track ends there. The threshold
keeps it to what the embedder calls different people (dlib's descriptor scores different people 0.78-0.90,
ArcFace's near 0); the track's own spread keeps a change of light from splitting it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamer.embed.vectors import l2_normalise
from streamer.identify.track_identity import TrackIdentity
from streamer.records import Face

STRIKES = 2  # analysed faces in a row that look like someone else before the track is split
MIN_SAMPLES = 3  # faces under the same occluders the track must hold before its look is trusted
SPREAD = 4.0  # standard deviations of the track's own similarities below their mean...
MARGIN = 0.05  # ...and at least this far below it


@dataclass
class AppearanceGuard:
    """Per track: how many analysed faces in a row looked like someone else."""

    strikes: int = 0

    def someone_else(self, identity: TrackIdentity, face: Face, naming_threshold: float, usable: bool) -> bool:
        """True once ``face`` and the STRIKES - 1 analysed faces before it do not look like the track: below the
        naming threshold (they would not be named as the track's person) and far below the track's own
        consistency. A face not analysed this frame (no embedding), or one the identity would not use (too
        small, blurred, turned: ``usable``), says nothing either way."""
        if face.embedding is None or not usable:
            return False
        level, reference = self._reference(identity, face.occlusion.classes if face.occlusion else ())
        if reference is None:
            return False
        similarity = float(face.embedding @ reference)
        self.strikes = self.strikes + 1 if similarity < min(level, naming_threshold) else 0
        return self.strikes >= STRIKES

    @property
    def doubting(self) -> bool:
        """A face already looked like someone else: the next faces are held out of the track's evidence."""
        return self.strikes > 0

    @staticmethod
    def _reference(identity: TrackIdentity, occluders: tuple[str, ...]) -> tuple[float, np.ndarray | None]:
        same = [s for s in identity.samples if s.occluders == occluders]
        if len(same) < MIN_SAMPLES:
            return 0.0, None
        weights = np.array([s.weight for s in same])[:, None]
        vectors = np.stack([s.visible for s in same])
        reference = l2_normalise((weights * vectors).sum(0)[None])[0]
        own = vectors @ reference
        return float(own.mean() - max(SPREAD * own.std(), MARGIN)), reference
