"""Face embeddings from aligned crops: one interface, backends chosen by ``embedder.backend``."""

from __future__ import annotations

from typing import Annotated, Protocol

import numpy as np
from pydantic import Field

from engines import Device
from streamer.embed.arcface import ArcFaceConfig, ArcFaceEmbedder
from streamer.embed.dlib_resnet import DlibEmbedderConfig, DlibResnetEmbedder
from streamer.embed.lbp_histogram import LbpHistogramConfig, LbpHistogramEmbedder
from streamer.embed.vectors import l2_normalise

__all__ = ["EmbedderConfig", "FaceEmbedder", "build_embedder", "l2_normalise"]


class FaceEmbedder(Protocol):
    description: str
    model_id: str  # embeddings from different models are never compared
    default_threshold: float  # cosine similarity that names a face, unless gallery.threshold overrides it
    # Embeds what cameras see into this embedder's space, trained to be robust to occluders (``streamer train
    # embedder``); the gallery and reconstructions keep this embedder. None: this embedder embeds everything.
    student: FaceEmbedder | None
    # As a student: it was taught faces with the occluder's pixels hidden, and is shown them so (embed/hiding.py).
    hides_occluders: bool

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(n, S, S, 3) uint8 BGR aligned crops -> (n, D) float32, L2-normalised."""
        ...

    def visible_dims(self, masks: np.ndarray) -> np.ndarray | None:
        """(n, S, S) bool occlusion masks -> (n, D) float weights of the dimensions the camera saw.

        For descriptors whose dimensions are image regions (LBP cells), so matching can ignore what
        was hidden; None for holistic embeddings (ArcFace), whose every dimension sees the whole face.
        """
        ...


EmbedderConfig = Annotated[LbpHistogramConfig | ArcFaceConfig | DlibEmbedderConfig, Field(discriminator="backend")]

_BACKENDS = {"lbp_histogram": LbpHistogramEmbedder, "arcface": ArcFaceEmbedder, "dlib": DlibResnetEmbedder}


def build_embedder(config: EmbedderConfig, device: Device) -> FaceEmbedder:
    return _BACKENDS[config.backend](config, device)
