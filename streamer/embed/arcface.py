"""ArcFace-type ONNX embedder (insightface's ArcFaceONNX: buffalo_l's w600k_r50, MobileFaceNet, ...).

The network runs on the project's engine layer; the pre-processing is insightface's ArcFaceONNX
(RGB, (x - mean) / std with the mean and std its graph implies), re-implemented here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from engines import Device
from engines.base import DeclaredModel
from streamer.config_base import ExistingPath, StrictModel
from streamer.detect.scrfd import scrfd_layout
from streamer.embed.student import check_student, fingerprint, hides_occluders
from streamer.embed.vectors import MIRROR_TAG, l2_normalise, mirror_summed
from streamer.errors import ModelError
from streamer.model_files import open_onnx_model, resolve_model_file, warm_up

EXPECTED = "an insightface ArcFaceONNX model (one (n, 3, H, W) image input, one (n, D) embedding output)"
UNBOUNDED_BATCH = 256  # crops per call where the model's batch axis is dynamic


class ArcFaceConfig(StrictModel):
    backend: Literal["arcface"]
    model: ExistingPath = Field(description="ArcFace .onnx file, or an insightface model-pack folder (w600k_*.onnx)")
    student: ExistingPath | None = Field(None, description="a student of this model ('streamer train embedder'): it "
                                         "embeds what cameras see; the gallery keeps this model's embeddings")
    mirror: bool = Field(True, description="embed each face and its mirror image and add the two (twice the "
                         "network's work): MobileFaceNet names more faces, occluded ones most (streamer eval "
                         "identity); a gallery embedded one way is refused the other way until 'streamer gallery "
                         "reembed'")


def input_normalisation(path: Path) -> tuple[float, float]:
    """(mean, std) the model's input expects, decided as insightface's ArcFaceONNX does: an MXNet export
    normalises inside its graph (a Sub and a Mul among its first nodes) and takes raw pixels; the others
    take (x - 127.5) / 127.5."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    names = [node.name for node in graph.node[:8]]
    has_sub = any(n.startswith(("Sub", "_minus")) for n in names)
    has_mul = any(n.startswith(("Mul", "_mul")) for n in names)
    return (0.0, 1.0) if has_sub and has_mul else (127.5, 127.5)


class ArcFaceEmbedder:
    student: ArcFaceEmbedder | None = None  # embeds probes into this model's space; None: this model does
    hides_occluders = False  # as a student: shown faces with the occluder's pixels hidden (embed/hiding.py)

    def __init__(self, config: ArcFaceConfig, device: Device, *, student_of: str | None = None):
        path = resolve_model_file(config.model, "w600k_*.onnx")
        if student_of is not None:  # a student: its recipe says how it is to be shown faces
            self.hides_occluders = hides_occluders(check_student(path, student_of))
        self._engine = open_onnx_model(path, device, EXPECTED)
        _check_embedder(self._engine, path)
        self._input_name = self._engine.input_names[0]
        batch, _, _, width = self._engine.inputs[0].shape  # square: _check_embedder saw to it
        self._size = int(width)
        self._mean, self._std = input_normalisation(path)
        # Some exports (the shared MobileFaceNet among them) fix the batch at 1: those get one crop at a time.
        self._fixed_batch = batch
        self._max_batch = batch or UNBOUNDED_BATCH
        # ArcFace-family cosines: same person typically 0.4-0.8, different people below 0.2.
        self.default_threshold = 0.35
        self.fingerprint = fingerprint(path)
        self.mirror = config.mirror
        # Mirrored sums are other vectors than single views: the id says which, so that the two never meet.
        self.model_id = f"arcface:{path.stem}{MIRROR_TAG if self.mirror else ''}:{self.fingerprint}"
        self.description = (f"ArcFace {path.name} ({self._size}px) on {self._engine.backend}, {device}"
                            f"{', each face with its mirror image' if self.mirror else ''}")
        warm_up(path, lambda: self.embed(np.zeros((1, self._size, self._size, 3), np.uint8)))
        if config.student is not None:
            self.student = ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=config.student,
                                                         mirror=config.mirror), device, student_of=self.fingerprint)
            self.student.model_id = self.model_id  # its embeddings live in this model's space, by training
            self.description += (f", probes by its student {config.student.name}"
                                 f"{' (shown their occluders hidden)' if self.student.hides_occluders else ''}")

    def visible_dims(self, masks: np.ndarray) -> None:
        return None

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(n, S, S, 3) uint8 BGR aligned crops -> (n, D) float32, L2-normalised."""
        if len(crops) == 0:
            return np.zeros((0, 0), np.float32)
        if crops.shape[1] != self._size:
            crops = np.stack([cv2.resize(c, (self._size, self._size), interpolation=cv2.INTER_AREA) for c in crops])
        n = len(crops)
        if self.mirror:
            crops = np.concatenate([crops, crops[:, :, ::-1]])  # one batch: a GPU runs both views in one call
        step = self._max_batch
        features = np.concatenate([self._features(crops[i : i + step]) for i in range(0, len(crops), step)])
        return l2_normalise(mirror_summed(features, n) if self.mirror else features)

    def _features(self, crops: np.ndarray) -> np.ndarray:
        """(b, size, size, 3) uint8 BGR -> (b, D) raw network output, one call."""
        n = len(crops)
        if self._fixed_batch and n < self._fixed_batch:  # a fixed batch axis takes only full batches
            crops = np.concatenate([crops, np.zeros((self._fixed_batch - n, *crops.shape[1:]), crops.dtype)])
        blob = cv2.dnn.blobFromImages(list(crops), 1.0 / self._std, (self._size, self._size), (self._mean,) * 3,
                                      swapRB=True)
        return self._engine.run({self._input_name: blob})[0].reshape(len(crops), -1)[:n]


def _check_embedder(engine: DeclaredModel, path: Path) -> None:
    """A ModelError unless ``engine`` takes (n, 3, H, W) square images and gives one (n, D) output."""
    inputs, outputs = engine.inputs, engine.outputs
    shape = inputs[0].shape if len(inputs) == 1 else ()
    if len(shape) == 4 and shape[1] == 3 and shape[2] and shape[2] == shape[3] and len(outputs) == 1 \
            and len(outputs[0].shape) == 2:
        return
    found = "SCRFD" if scrfd_layout(engine) else (
        f"a model with inputs {[i.shape for i in inputs]} and outputs {[o.shape for o in outputs]}")
    raise ModelError(f"{path} is {found}, expected {EXPECTED}")
