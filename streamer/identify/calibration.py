"""A threshold that holds the false-accept rate as the gallery grows.

A face is compared with every identity in the gallery: a threshold set so that one comparison with a
stranger passes it 1% of the time lets a stranger through about N% of the time against N people (64% of
strangers were named at 1,329 people). The gallery itself says how an embedder scores different people:
the cosines between the faces of its different identities. The threshold where a stranger passes any of N
comparisons with probability ``false_accept_rate`` is the score one impostor pair in N / rate exceeds.

That is far out in the tail, rarer than the gallery's pairs can show, so the tail is extrapolated. A normal
fitted to all the pairs gets the tail's shape wrong, and differently per embedder (measured on glint24 and
faces_eval, 68,000 to 425,000 pairs): at 1 in 10,000 it put dlib's threshold 0.12 too high (0.88 against
0.77: nobody named at 100 people) and MobileFaceNet's 0.024 too low (0.399 against 0.423: more strangers
named than promised). The tail's own slope extrapolates within 0.013 of the measured quantiles at 1 in
10,000 and 100,000: the scores 1 pair in 100 and 1 pair in 1,000 (or the rarest that 10 pairs show) reach,
joined by a line in normal quantiles and carried on. A gallery with too few pairs for that falls back to
the normal.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

MIN_IDENTITIES = 20  # fewer people say too little about the embedder: the fixed threshold alone holds
MAX_PAIRS = 200_000  # impostor pairs sampled: enough for the mean and spread, at any gallery size
TAIL_LOW = 0.01  # the tail's two anchors: the score 1 pair in 100 reaches ...
TAIL_HIGH = 0.001  # ... and 1 in 1,000, or the rarest share that TAIL_MIN_PAIRS pairs reach
TAIL_MIN_PAIRS = 10
MAX_TAIL_HIGH = 0.005  # a gallery whose 10 top pairs are more than 1 in 200 of its pairs has no tail to speak of


@dataclass(frozen=True)
class ImpostorModel:
    """How the embedder scores the faces of different people in this gallery."""

    mean: float
    std: float
    pairs: int
    tail: tuple[tuple[float, float], tuple[float, float]] | None = None  # (share of pairs, score they reach) x2

    def threshold(self, comparisons: int, false_accept_rate: float) -> float:
        """The score a stranger's face exceeds against any of ``comparisons`` identities with probability
        ``false_accept_rate``."""
        z = statistics.NormalDist().inv_cdf(1 - false_accept_rate / max(comparisons, 1))
        if self.tail is None:
            return self.mean + self.std * z
        (low_share, low), (high_share, high) = self.tail
        z_low, z_high = (statistics.NormalDist().inv_cdf(1 - share) for share in (low_share, high_share))
        return high + (high - low) / (z_high - z_low) * (z - z_high)


def impostor_model(vectors: np.ndarray, identities: np.ndarray, seed: int = 0) -> ImpostorModel | None:
    """From (m, D) L2-normalised gallery vectors and their (m,) identity ids: cosines of random pairs of
    different identities. None for a gallery of fewer than MIN_IDENTITIES people."""
    if len(np.unique(identities)) < MIN_IDENTITIES:
        return None
    if len(vectors) * (len(vectors) - 1) // 2 <= MAX_PAIRS:  # every pair once: the tail as it is
        first, second = np.triu_indices(len(vectors), 1)
    else:
        rng = np.random.default_rng(seed)
        first, second = rng.integers(0, len(vectors), MAX_PAIRS), rng.integers(0, len(vectors), MAX_PAIRS)
    different = identities[first] != identities[second]
    first, second = first[different], second[different]
    # In chunks: 200,000 pairs of 512-d vectors at once would be 800 MB of copies.
    cosines = np.concatenate([np.einsum("ij,ij->i", vectors[first[s:s + 20_000]], vectors[second[s:s + 20_000]])
                              for s in range(0, len(first), 20_000)])
    high_share = max(TAIL_HIGH, TAIL_MIN_PAIRS / max(len(cosines), 1))
    tail = None
    if high_share <= MAX_TAIL_HIGH:
        low, high = np.quantile(cosines, [1 - TAIL_LOW, 1 - high_share])
        tail = ((TAIL_LOW, float(low)), (high_share, float(high))) if high > low else None
    return ImpostorModel(float(cosines.mean()), float(cosines.std()), len(cosines), tail)


def held_threshold(fixed: float, impostors: ImpostorModel | None, comparisons: int, false_accept_rate: float | None
                   ) -> float:
    """The threshold that names a face: ``fixed``, raised to hold ``false_accept_rate`` over ``comparisons``
    when the gallery says enough about its embedder (and a rate is set)."""
    if false_accept_rate is None or impostors is None:
        return fixed
    return max(fixed, impostors.threshold(comparisons, false_accept_rate))
