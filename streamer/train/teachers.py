"""The embedders a student can be trained from (``streamer train embedder --teacher``): one interface, the
network in torch behind it.

- ``ArcFaceTeacher``: any ArcFace-layout ONNX (MobileFaceNet, buffalo_l's w600k_r50), its graph rebuilt in
  torch (``engines/onnx_torch.py``); the student is the teacher's graph with new weights.
- ``DlibTeacher`` (``--teacher dlib``): dlib's ResNet face descriptor, read from its ``.dat`` file
  (``engines/dlib_torch.py``); the student is an ONNX of that network taking dlib's own 150 px face chip,
  which ``embedder: {backend: dlib, student: ...}`` cuts as it does for dlib.

A teacher sees the composed faces (ArcFace layout, ``size`` px, RGB in [0, 1]) through ``input``, which
turns them into what its network takes.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from streamer.embed.student import fingerprint, save_student, student_file_teacher, write_student
from streamer.errors import ConfigError, ModelError

BATCH = 64  # faces per forward pass outside training
# A bank face an ArcFace teacher scores at least this like an excluded face may be the same person (its
# different people stay below 0.2); the evaluation's own rule (eval/identity.py: same_person_similarity).
ARCFACE_SAME_PERSON = 0.5


class Teacher(Protocol):
    name: str
    fingerprint: str  # the model file's, as a student records it and the stream checks it
    size: int  # px of the composed ArcFace-layout faces ``input`` takes
    # cosine at which --exclude-like takes a training face for an excluded person; None: it cannot judge that
    same_person: float | None
    # whether the student is taught around the mean of the teacher's embeddings (their common part left out)
    centred: bool

    def network(self, trainable: bool) -> nn.Module:
        """The teacher's network (a fresh copy): ``input(faces)`` -> (n, D) raw embeddings; with
        ``weights_in_use_order()``, its weights in the order the forward pass uses them."""
        ...

    def student_network(self, path: Path) -> nn.Module:
        """The network of a student ONNX this teacher's run exported (``--init``): the teacher's network with the
        student's weights; a ConfigError naming ``path`` if it is not a student of this teacher."""
        ...

    def input(self, rgb01: torch.Tensor) -> torch.Tensor:
        """(n, 3, size, size) composed faces, RGB in [0, 1] -> the network's input."""
        ...

    def clean_embeddings(self, faces: list[np.ndarray]) -> np.ndarray:
        """(n, D) L2-normalised embeddings of (S, S, 3) uint8 BGR ArcFace-layout faces, single view."""
        ...

    def export(self, student: nn.Module, out: Path, recipe: dict) -> float:
        """``student`` as the ONNX ``out`` the stream loads as ``embedder.student``; the largest difference
        between ONNX Runtime's and torch's normalised embeddings of the same faces."""
        ...


def _check_init(path: Path, teacher: str, name: str) -> None:
    """A one-line ConfigError unless ``path`` is a student ONNX of the teacher whose fingerprint is ``teacher``."""
    trained_from = student_file_teacher(path, "--init")
    if trained_from != teacher:
        raise ConfigError(f"--init: {path} is a student of another model (sha256 {trained_from}...); it must be a "
                          f"student of --teacher {name}")


def teacher_from(spec: str | Path, device: str = "cpu", flag: str = "--teacher") -> Teacher:
    """``dlib`` or an ArcFace-layout .onnx; anything else is a one-line ConfigError naming ``flag``."""
    if str(spec) == "dlib":
        try:
            return DlibTeacher(device)
        except ModelError as exc:
            raise ConfigError(f"{flag} dlib: {exc}") from None
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"{flag}: not found: {path} (an ArcFace-layout .onnx, or 'dlib')")
    try:
        return ArcFaceTeacher(path, device)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("--teacher", flag, 1)) from None


def embed(teacher: Teacher, net: nn.Module, rgb01: torch.Tensor) -> torch.Tensor:
    return F.normalize(net(teacher.input(rgb01)).flatten(1).float(), dim=1)


def _largest_difference(session_path: Path, inputs: np.ndarray, expected: np.ndarray) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(session_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    got = np.concatenate([session.run(None, {name: inputs[i:i + 1]})[0] for i in range(len(inputs))])
    got /= np.linalg.norm(got, axis=1, keepdims=True)
    return float(np.abs(got - expected).max())


class ArcFaceTeacher:
    """An ArcFace-layout ONNX: (n, 3, S, S) RGB, normalised as insightface's ArcFaceONNX does."""

    def __init__(self, path: Path, device: str = "cpu"):
        import onnx

        from streamer.embed.arcface import input_normalisation

        try:
            graph = onnx.load(str(path), load_external_data=False).graph
        except Exception as exc:  # noqa: BLE001 - a protobuf error of any kind: not an ONNX file
            raise ConfigError(f"--teacher: {path} is not an ONNX file ({type(exc).__name__})") from None
        initializers = {i.name for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in initializers]
        dims = [d.dim_value or None for d in inputs[0].type.tensor_type.shape.dim] if len(inputs) == 1 else []
        outputs = [len(o.type.tensor_type.shape.dim) for o in graph.output]
        if not (len(dims) == 4 and dims[1] == 3 and dims[2] and dims[2] == dims[3] and outputs == [2]):
            raise ConfigError(f"--teacher: {path} is not an ArcFace-layout ONNX (expected one (n, 3, S, S) image "
                              f"input and one (n, D) embedding output; it has inputs {dims or len(inputs)} and "
                              f"outputs of rank {outputs})")
        self.path, self.name, self.fingerprint = path, path.name, fingerprint(path)
        self.size = int(dims[2])
        self.same_person = ARCFACE_SAME_PERSON
        self.centred = False  # ArcFace embeddings spread over the sphere: different people near 0
        self.mean, self.std = input_normalisation(path)
        self._bulk, self._device = None, device

    def network(self, trainable: bool) -> nn.Module:
        from engines.onnx_torch import OnnxConvNet

        try:
            return OnnxConvNet(self.path, trainable=trainable)
        except ValueError as exc:
            raise ConfigError(f"--teacher: {exc}") from None

    def student_network(self, path: Path) -> nn.Module:
        from engines.onnx_torch import OnnxConvNet

        _check_init(path, self.fingerprint, self.name)
        return OnnxConvNet(path, trainable=True)  # the teacher's graph: its weights under the same names

    def input(self, rgb01: torch.Tensor) -> torch.Tensor:
        return (rgb01 * 255.0 - self.mean) / self.std

    def clean_embeddings(self, faces: list[np.ndarray]) -> np.ndarray:
        if self._bulk is None:  # ONNX Runtime: the same numbers as the torch rebuild, several times faster
            from engines import select_device
            from streamer.embed.arcface import ArcFaceConfig, ArcFaceEmbedder

            # Single view, as the torch rebuild embeds; a student used mirrored adds up as its teacher does.
            self._bulk = ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=self.path, mirror=False),
                                         select_device(self._device))
        return self._bulk.embed(np.stack([_resized(f, self.size) for f in faces]))

    def export(self, student: nn.Module, out: Path, recipe: dict) -> float:
        write_student(self.path, student.onnx_weights(), out, recipe)
        faces = torch.rand(3, 3, self.size, self.size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            expected = embed(self, student.eval(), faces).numpy()
        return _largest_difference(out, self.input(faces).numpy(), expected)


class DlibTeacher:
    """dlib's ResNet descriptor. Composed faces are cut into dlib's chip by one fixed similarity (the ArcFace
    template's points onto the chip's): the stream re-measures each face's points with dlib's predictor
    instead (DlibResnetEmbedder.chips), a median 0.07 of the eye distance away on aligned faces."""

    def __init__(self, device: str = "cpu"):
        from engines.dlib_torch import DlibFaceNet
        from streamer.detect.dlib_detector import DLIB5_IN_ARCFACE_112, similarity_batch
        from streamer.embed.dlib_resnet import CHIP_POINTS, CHIP_PX, WORK_PX, descriptor_file

        self.path = descriptor_file()
        self.name, self.fingerprint = self.path.name, fingerprint(self.path)
        self.size = WORK_PX
        # Its different people reach 0.916 in 1% of pairs: compared with thousands of excluded faces, almost every
        # training face would be like one (measured: 10,247 of 11,179 bank faces at 0.916). --exclude-by judges.
        self.same_person = None
        # Its unit descriptors share a common part (different people 0.78-0.90 cosine); a first student taught on
        # plain cosines (validation 0.948 -> 0.967 under occluders) barely raised identity (face masks TAR at
        # FAR 1% 0.339 -> 0.359): around their mean, the loss weighs what tells faces apart.
        self.centred = True
        # On the run's device: a GPU run embeds its ~9,000 training faces at 168 px there rather than on the CPU
        # before its first step (network() copies it there too, where the run puts its copies anyway).
        self._net = DlibFaceNet(self.path).to(device)
        self.chip_px = CHIP_PX
        # chip pixel -> face pixel, as grid_sample's normalised coordinates (pixel centres, align_corners=False)
        to_chip = similarity_batch(DLIB5_IN_ARCFACE_112[None] * (self.size / 112.0), CHIP_POINTS[None])[0]
        from_chip = cv2.invertAffineTransform(to_chip)
        u, v = np.meshgrid(np.arange(CHIP_PX), np.arange(CHIP_PX))
        source = np.stack([u, v, np.ones_like(u)], -1) @ from_chip.T
        self._grid = torch.from_numpy((2 * source + 1) / self.size - 1).float()[None]

    def network(self, trainable: bool) -> nn.Module:
        import copy

        net = copy.deepcopy(self._net)
        for weight in net.parameters():
            weight.requires_grad_(trainable)
        return net

    def student_network(self, path: Path) -> nn.Module:
        _check_init(path, self.fingerprint, self.name)
        # Its ONNX is torch's export, whose weights are not named as the rebuilt network's: not read back (yet).
        raise ConfigError(f"--init: {path} is a student of dlib's descriptor; starting from one is not supported, "
                          f"only from students of ArcFace-layout ONNX teachers")

    def input(self, rgb01: torch.Tensor) -> torch.Tensor:
        grid = self._grid.to(rgb01.device).expand(len(rgb01), -1, -1, -1)
        return F.grid_sample(rgb01 * 255.0, grid, mode="bilinear", padding_mode="border", align_corners=False)

    @torch.no_grad()
    def clean_embeddings(self, faces: list[np.ndarray]) -> np.ndarray:
        net = self._net.eval()
        device = next(net.parameters()).device
        chunks = []
        for start in range(0, len(faces), BATCH):
            rgb = np.stack([_resized(f, self.size)[:, :, ::-1] for f in faces[start:start + BATCH]])
            rgb01 = torch.from_numpy(rgb.copy()).to(device).permute(0, 3, 1, 2).float() / 255.0
            chunks.append(embed(self, net, rgb01).cpu())
        return torch.cat(chunks).numpy() if chunks else np.zeros((0, 128), np.float32)

    def export(self, student: nn.Module, out: Path, recipe: dict) -> float:
        """The student as an ONNX taking dlib's chip: (n, 3, 150, 150) RGB pixel values 0-255 -> (n, 128)."""
        import io

        import onnx

        student = student.eval().cpu()
        chips = torch.rand(3, 3, self.chip_px, self.chip_px, generator=torch.Generator().manual_seed(0)) * 255.0
        buffer = io.BytesIO()
        with warnings.catch_warnings():  # the traced sizes of dlib's uneven sums are fixed by the chip: as meant
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(student, chips[:1], buffer, input_names=["chip"], output_names=["descriptor"],
                              dynamic_axes={"chip": {0: "n"}, "descriptor": {0: "n"}}, opset_version=17, dynamo=False)
        save_student(onnx.load_from_string(buffer.getvalue()), self.fingerprint, recipe, out)
        with torch.no_grad():
            expected = F.normalize(student(chips), dim=1).numpy()
        return _largest_difference(out, chips.numpy(), expected)


def _resized(face: np.ndarray, size: int) -> np.ndarray:
    return face if face.shape[0] == size else cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
