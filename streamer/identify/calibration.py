"""A threshold that holds the false-accept rate as the gallery grows.

A face is compared with every identity in the gallery: a threshold set so that one comparison with a
stranger passes it 1% of the time lets a stranger through about N% of the time against N people (64% of
strangers were named at 1,329 people). The gallery itself says how an embedder scores different people:
the cosines between the faces of its different identities. They are close to normal, so the threshold
where a stranger passes any of N comparisons with probability ``false_accept_rate`` is the impostor
mean plus the normal quantile of 1 - rate / N standard deviations.

The normal gets the far tail's shape wrong, differently per embedder (glint24 and faces_eval, 68,000 to
425,000 pairs, at 1 pair in 10,000): dlib's measured 0.943-0.949 against 0.971-0.976 from the normal,
MobileFaceNet's 0.423-0.445 against 0.398-0.399. Tried (2026-12-02) and not kept: a line through the
scores 1 pair in 100 and 1 in 1,000 reach, in normal quantiles, which lands within 0.016 of those. In
`streamer eval identity` it named dlib's people at 100 (52% right, but 4.5% of strangers: the degraded
probes score strangers higher than the gallery's clean photos score each other), and nobody at all at
1,000, where UTKFace's children and repeated photos give the gallery's own pairs a heavy tail that its
strangers do not share (MobileFaceNet: 27% named right with the normal, none with the line).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

MIN_IDENTITIES = 20  # fewer people say too little about the embedder: the fixed threshold alone holds
MAX_PAIRS = 200_000  # impostor pairs sampled: enough for the mean and spread, at any gallery size


@dataclass(frozen=True)
class ImpostorModel:
    """How the embedder scores the faces of different people in this gallery."""

    mean: float
    std: float
    pairs: int

    def threshold(self, comparisons: int, false_accept_rate: float) -> float:
        """The score a stranger's face exceeds against any of ``comparisons`` identities with probability
        ``false_accept_rate``."""
        per_comparison = false_accept_rate / max(comparisons, 1)
        return self.mean + self.std * statistics.NormalDist().inv_cdf(1 - per_comparison)


def impostor_model(vectors: np.ndarray, identities: np.ndarray, seed: int = 0) -> ImpostorModel | None:
    """From (m, D) L2-normalised gallery vectors and their (m,) identity ids: cosines of random pairs of
    different identities. None for a gallery of fewer than MIN_IDENTITIES people."""
    if len(np.unique(identities)) < MIN_IDENTITIES:
        return None
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(vectors), MAX_PAIRS)
    second = rng.integers(0, len(vectors), MAX_PAIRS)
    different = identities[first] != identities[second]
    first, second = first[different], second[different]
    # In chunks: 200,000 pairs of 512-d vectors at once would be 800 MB of copies.
    cosines = np.concatenate([np.einsum("ij,ij->i", vectors[first[s:s + 20_000]], vectors[second[s:s + 20_000]])
                              for s in range(0, len(first), 20_000)])
    return ImpostorModel(float(cosines.mean()), float(cosines.std()), len(cosines))


def held_threshold(fixed: float, impostors: ImpostorModel | None, comparisons: int, false_accept_rate: float | None
                   ) -> float:
    """The threshold that names a face: ``fixed``, raised to hold ``false_accept_rate`` over ``comparisons``
    when the gallery says enough about its embedder (and a rate is set)."""
    if false_accept_rate is None or impostors is None:
        return fixed
    return max(fixed, impostors.threshold(comparisons, false_accept_rate))
