"""Trains an occlusion-robust student of a face detector (SCRFD or YuNet), without labels.

    streamer train detector --teacher SCRFD_OR_YUNET.onnx --faces BANK [BANK ...] --out RUN [--occluders DIR]
        [--backgrounds PATH ...] [--surroundings CELEBAMASKHQ] [--occluders-alone S] [--canvas PX]
        [--minutes M | --epochs N] [--frozen-share F] [--device cpu|cuda] [--resume]

An occluder lowers the detector's score (a tenth of masked faces fall under its threshold) and moves its
landmarks, by which the face is then aligned. The student starts as a copy of the teacher (its graph rebuilt
in torch: ``engines/onnx_torch.py``) and learns to give a canvas as a camera sees it (a face of the banks
under occluders and camera faults) the teacher's outputs on the same canvas with the face clean: its score,
box and 5 points at every anchor. Where the teacher finds no face (the scene around the face, and canvases of
the scene alone), the student is taught to find none either. What it learns to accept, a head whose mouth or
eyes cannot be seen, also lets more backs of heads through than the teacher does (``streamer/detect/STUDENT.md``).

The heads' maps are read where each output's layout operators (Transpose, Reshape, Sigmoid) begin, so any
SCRFD export with the 5 points serves, and OpenCV Zoo's YuNet (``detector_heads.py``). Per anchor: the score by
binary cross-entropy to the teacher's probability, less that probability's entropy (0 for a perfect copy; YuNet's
class and objectness each); box and points by L1 to the teacher's, weighted by the teacher's score where it is at
least ``POSITIVE``. The score's term is divided by the anchors the teacher calls a face, the others by their
weights' sum.

Per epoch: validation on fixed canvases of the banks' val split with an occluder on each face: the share of
faces found at the stream's default threshold (SCRFD 0.5, YuNet 0.7) by the teacher and the student, their
landmark error against the teacher's on the clean canvas (in eye distances), and the faces each finds on canvases
of the scene alone. ``last.pt`` (resumable) and ``best.pt`` (best validation loss); at the end ``detector.onnx``:
the teacher's graph with the student's weights, checked against torch, which ``detector: {backend: scrfd, model:
RUN/detector.onnx}`` loads (``backend: yunet`` for a student of YuNet).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engines import Device
from engines.onnx_torch import OnnxGraph
from streamer.datagen.compose import ComposeSettings
from streamer.datagen.face_bank import train_and_val
from streamer.datagen.face_frame import FaceFrame
from streamer.datagen.occluders import OccluderLibrary
from streamer.embed.student import fingerprint, write_student
from streamer.errors import ConfigError, ModelError
from streamer.model_files import open_onnx_model
from streamer.track.iou import iou_matrix
from streamer.train.detector_data import SeenAndCleanCanvases, read_backgrounds, read_surroundings
from streamer.train.detector_heads import EXPECTED, teacher_heads
from streamer.train.epochs import descend, epoch_loader, freeze_early, save_checkpoint, scheduled_rate
from streamer.train.run_folder import checked_run_folder

CHECKPOINT_FORMAT = "streamer-detector-student-1"
POSITIVE = 0.3  # a teacher's probability from which an anchor's box and points are taught
VALIDATION_CANVASES = 192
VALIDATION_SCENES = 32
VALIDATION_CHUNK = 32  # canvases a forward pass in validation


@dataclass
class DetectorTraining:
    teacher: Path
    faces: list[Path]
    out: Path
    occluders: Path | None = None
    backgrounds: list[Path] | None = None
    canvas: int = 256  # px, square; SCRFD's and YuNet's sides are multiples of 32
    epochs: int = 10
    minutes: float | None = None
    batch: int = 16
    lr: float = 1e-4
    # The first share of the weights, in graph order, stays the teacher's: the early high-resolution layers cost
    # most of the backward pass, and find edges, which an occluder does not change.
    frozen_share: float = 0.0
    device: str = "cpu"
    workers: int = 1
    seed: int = 0
    log_every: int = 50
    resume: bool = False
    limit: int | None = None
    samples_per_epoch: int | None = None
    # The share of scene-alone canvases (with --backgrounds or --surroundings) that show occluders with no face under
    # them.
    occluders_alone: float = 0.0
    # A CelebAMask-HQ folder: what surrounds each training photo's face is a scene too (detector_data).
    surroundings: Path | None = None


class _Run:
    def __init__(self, spec: DetectorTraining, progress: Callable[[str], None]):
        self.spec, self.progress = spec, progress
        self.device = torch.device("cuda" if spec.device in ("cuda", "0") else spec.device)
        torch.manual_seed(spec.seed)
        self.heads = teacher_heads(spec.teacher, spec.canvas)
        self.fingerprint = fingerprint(spec.teacher)
        try:
            self.teacher = OnnxGraph(spec.teacher).to(self.device).eval()
        except ValueError as exc:  # an operator the torch rebuild does not have
            raise ConfigError(f"--teacher: {exc}") from None
        self.student = OnnxGraph(spec.teacher, trainable=True).to(self.device).train()
        freeze_early(self.student, spec.frozen_share)
        train_faces, val_faces = train_and_val(spec.faces, "--faces", spec.limit)
        library = OccluderLibrary(spec.occluders)
        backgrounds = read_backgrounds(spec.backgrounds or [], spec.canvas)
        if spec.surroundings:  # about a minute for CelebAMask-HQ's 4,000 training photos on 2 cores
            progress(f"--surroundings: cutting what surrounds the face of each training photo of {spec.surroundings}")
        surroundings = read_surroundings(spec.surroundings) if spec.surroundings else []
        to_input = self.heads.to_input
        self.train_set = SeenAndCleanCanvases(train_faces, library, spec.canvas, spec.seed, backgrounds, to_input,
                                              samples_per_epoch=spec.samples_per_epoch,
                                              occluders_alone=spec.occluders_alone, surroundings=surroundings)
        if len(self.train_set) < spec.batch:
            raise ConfigError(f"--batch: {spec.batch} is more than the {len(self.train_set)} samples of an epoch "
                              f"(--limit / --samples-per-epoch): no step would be taken")
        # Validation: every face under an occluder, drawn once; and the scenes alone, where the student should find
        # what the teacher finds (their own people) and nothing more. The scenes are patches of the training frames:
        # a check that the two still agree there, not a held-out measure (benchmarks/detector_threshold.py is).
        val_set = SeenAndCleanCanvases(val_faces, library, spec.canvas, spec.seed, [], to_input,
                                       settings=ComposeSettings(clean_share=0.0, degrade_share=0.7))
        self.val = [tuple(to_input(c) for c in val_set.canvases(i, -1)[:2])
                    for i in range(min(VALIDATION_CANVASES, len(val_faces)))]
        self.val_scenes = [to_input(val_set.scene(backgrounds, np.random.default_rng([spec.seed, k])))
                           for k in range(VALIDATION_SCENES)] if backgrounds else []
        self.optimizer = torch.optim.AdamW([p for p in self.student.parameters() if p.requires_grad], spec.lr,
                                           weight_decay=0.0)
        self.epoch, self.step, self.seconds = 0, 0, 0.0
        self.history: list[dict] = []
        self.best = float("inf")
        # The teacher's maps on the clean validation canvases, once: every epoch compares with them.
        with torch.no_grad():
            self.val_truth = [self.maps(self.teacher, torch.stack([c for _, c in self.val[s:s + VALIDATION_CHUNK]])
                                        .to(self.device)) for s in range(0, len(self.val), VALIDATION_CHUNK)]
        self.val_teacher = self._validate_net(self.teacher)  # the teacher's own figures on the same canvases

    # -- the networks' maps ----------------------------------------------------------------------

    def maps(self, net: OnnxGraph, inputs: torch.Tensor) -> list[torch.Tensor]:
        return net.features(inputs, self.heads.names)[1]

    def loss(self, seen: torch.Tensor, clean: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            targets = self.maps(self.teacher, clean)
        return self.distillation(self.maps(self.student, seen), targets)

    def distillation(self, maps: list[torch.Tensor], targets: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        score, box, points, positives, weight = 0.0, 0.0, 0.0, 0.0, 0.0
        for mine, theirs in zip(self.heads.levels(maps), self.heads.levels(targets)):
            for logits, target_logits in zip(mine.logits, theirs.logits):
                probability = torch.sigmoid(target_logits)
                # Cross-entropy less the target's own entropy: 0 where the student's score is the teacher's.
                score = score + (F.binary_cross_entropy_with_logits(logits, probability, reduction="sum")
                                 - F.binary_cross_entropy_with_logits(target_logits, probability, reduction="sum"))
            probability = self.heads.probability(theirs)
            taught = probability * (probability >= POSITIVE)  # (N, A, H, W)
            positives = positives + (probability >= POSITIVE).sum()
            weight = weight + taught.sum()
            box = box + ((mine.box - theirs.box).abs().sum(2) * taught).sum()
            points = points + ((mine.points - theirs.points).abs().sum(2) * taught).sum()
        score = score / positives.clamp(min=1)
        box, points = box / weight.clamp(min=1e-6), points / weight.clamp(min=1e-6)
        return {"loss": score + box + points, "score": score, "box": box, "points": points}

    # -- validation ------------------------------------------------------------------------------

    def _detect(self, maps: list[torch.Tensor], k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.heads.detect(maps, k, (self.spec.canvas, self.spec.canvas))

    @torch.no_grad()
    def _validate_net(self, net: OnnxGraph) -> dict[str, float]:
        found, counted, errors, losses, on_scenes = 0, 0, [], [], 0
        for start, truth in zip(range(0, len(self.val), VALIDATION_CHUNK), self.val_truth):
            chunk = self.val[start:start + VALIDATION_CHUNK]
            mine = self.maps(net, torch.stack([s for s, _ in chunk]).to(self.device))
            losses.append(float(self.distillation(mine, truth)["loss"]) * len(chunk))
            for k in range(len(chunk)):
                true_dets, true_points = self._detect(truth, k)
                if not len(true_dets):
                    continue  # the teacher finds no face even clean (too small, cut): nothing to judge by
                counted += 1
                dets, points = self._detect(mine, k)
                match = _best_match(true_dets[0, :4], dets)
                if match is None:
                    continue
                found += 1
                truth_points = true_points[0]
                errors.append(float(np.linalg.norm(points[match] - truth_points, axis=1).mean()
                                    / FaceFrame(truth_points).eye_distance))
        for start in range(0, len(self.val_scenes), VALIDATION_CHUNK):
            scenes = torch.stack(self.val_scenes[start:start + VALIDATION_CHUNK]).to(self.device)
            mine = self.maps(net, scenes)
            on_scenes += sum(len(self._detect(mine, k)[0]) for k in range(len(scenes)))
        return {"val_loss": sum(losses) / max(len(self.val), 1), "found": found / max(counted, 1),
                "landmark_error_median": float(np.median(errors)) if errors else float("nan"),
                "faces_on_scenes": on_scenes / max(len(self.val_scenes), 1)}

    def validate(self) -> dict[str, float]:
        self.student.eval()
        figures = self._validate_net(self.student)
        self.student.train()
        return figures

    # -- checkpoints -----------------------------------------------------------------------------

    def save(self, name: str) -> None:
        save_checkpoint({"format": CHECKPOINT_FORMAT, "teacher": self.fingerprint, "canvas": self.spec.canvas,
                 "frozen_share": self.spec.frozen_share, "occluders_alone": self.spec.occluders_alone,
                 "surroundings": str(self.spec.surroundings) if self.spec.surroundings else None,
                 "student": self.student.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "epoch": self.epoch, "step": self.step, "seconds": self.seconds, "best": self.best,
                 "history": self.history}, self.spec.out / name)

    def restore(self, path: Path) -> None:
        state = torch.load(str(path), map_location=self.device, weights_only=True)
        if state.get("format") != CHECKPOINT_FORMAT or state.get("teacher") != self.fingerprint:
            raise ConfigError(f"--resume: {path} is not a detector student run of --teacher {self.spec.teacher}")
        for flag, key in (("--canvas", "canvas"), ("--frozen-share", "frozen_share")):
            if state[key] != getattr(self.spec, key):
                raise ConfigError(f"--resume: {path} was trained with {flag} {state[key]:g}; pass the same to "
                                  "continue it")
        # What the canvases show: the recipe written into detector.onnx is the resuming call's (absent from
        # checkpoints of before 2026-12-06, which say nothing of them: the call is trusted).
        alone, around = state.get("occluders_alone"), state.get("surroundings", "unknown")
        if alone is not None and alone != self.spec.occluders_alone:
            raise ConfigError(f"--resume: {path} was trained with --occluders-alone {alone:g}; pass the same to "
                              "continue it")
        if around != "unknown" and around != (str(self.spec.surroundings) if self.spec.surroundings else None):
            raise ConfigError(f"--resume: {path} was trained with "
                              f"{f'--surroundings {around}' if around else 'no --surroundings'}; pass the same to "
                              "continue it")
        self.student.load_state_dict(state["student"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step, self.seconds = state["epoch"], state["step"], state["seconds"]
        self.best, self.history = state["best"], state["history"]
        self.progress(f"resumed {path}: epoch {self.epoch} done, {self.seconds / 60:.1f} min trained")

    # -- training --------------------------------------------------------------------------------

    def run(self) -> None:
        spec = self.spec
        while not self._done():
            loader = epoch_loader(self.train_set, spec.batch, spec.workers, spec.seed, self.epoch)
            started, seconds_before, sums, count = time.monotonic(), self.seconds, {}, 0
            for index, (seen, clean) in enumerate(loader):
                lr = scheduled_rate(self.optimizer, spec.lr, self.seconds / (spec.minutes * 60) if spec.minutes
                                    else (self.epoch + index / max(len(loader), 1)) / spec.epochs)
                descend(self.optimizer, self.loss(seen.to(self.device), clean.to(self.device)), sums)
                self.step, count = self.step + 1, count + 1
                self.seconds = seconds_before + time.monotonic() - started
                if self.step % spec.log_every == 0:
                    rate = count * spec.batch / max(time.monotonic() - started, 1e-6)
                    self.progress(f"epoch {self.epoch + 1} step {index + 1}/{len(loader)}: loss "
                                  f"{sums['loss'] / count:.4f} (score {sums['score'] / count:.4f}, box "
                                  f"{sums['box'] / count:.4f}, points {sums['points'] / count:.4f}; epoch means) "
                                  f"lr {lr:.1e}, {rate:.1f} canvases/s")
                if spec.minutes is not None and self.seconds >= spec.minutes * 60:
                    break
            self.epoch += 1
            figures = self.validate()
            record = {"epoch": self.epoch, "seconds": round(self.seconds, 1), "steps": self.step,
                      **{f"train_{k}": round(v / max(count, 1), 5) for k, v in sums.items()},
                      **{k: round(v, 5) for k, v in figures.items()}}
            self.history.append(record)
            teacher = self.val_teacher
            self.progress(f"epoch {self.epoch}: validation, occluded faces found at {self.heads.threshold}: "
                          f"{teacher['found']:.1%} (teacher) -> {figures['found']:.1%} (student); landmark error "
                          f"(median, eye distances) {teacher['landmark_error_median']:.3f} -> "
                          f"{figures['landmark_error_median']:.3f}; faces on scenes alone "
                          f"{teacher['faces_on_scenes']:.2f} -> {figures['faces_on_scenes']:.2f}; "
                          f"{self.seconds:.0f} s")
            if record["val_loss"] < self.best:
                self.best = record["val_loss"]
                self.save("best.pt")
            self.save("last.pt")
            (spec.out / "history.json").write_text(json.dumps({"teacher_on_validation": teacher,
                                                               "epochs": self.history}, indent=1))

    def _done(self) -> bool:
        if self.spec.minutes is not None:
            return self.seconds >= self.spec.minutes * 60
        return self.epoch >= self.spec.epochs


def _best_match(box: np.ndarray, dets: np.ndarray) -> int | None:
    """The detection overlapping ``box`` most, if by an IoU of 0.5 or more."""
    if not len(dets):
        return None
    iou = iou_matrix(box[None, :4], dets[:, :4])[0]
    best = int(iou.argmax())
    return best if iou[best] >= 0.5 else None


def export(run: _Run, out: Path, recipe: dict) -> float:
    """``best.pt`` in the teacher's ONNX graph, written to ``out``; the largest difference between ONNX Runtime's
    outputs and torch's on one canvas of the validation set."""
    state = torch.load(str(run.spec.out / "best.pt"), map_location="cpu", weights_only=True)
    student = OnnxGraph(run.spec.teacher).eval()
    student.load_state_dict(state["student"])
    trained = {"epochs": state["epoch"], "minutes": round(state["seconds"] / 60, 1),
               "validation": state["history"][-1] if state["history"] else None}
    write_student(run.spec.teacher, student.onnx_weights(), out, {**recipe, **trained})
    canvas = run.val[0][0][None] if run.val else torch.zeros(1, 3, run.spec.canvas, run.spec.canvas)
    with torch.no_grad():
        expected = [t.numpy() for t in student(canvas)]
    engine = open_onnx_model(out, Device("cpu"), EXPECTED)
    got = engine.run({engine.input_names[0]: canvas.numpy()})
    return max(float(np.abs(np.asarray(g).reshape(e.shape) - e).max()) for g, e in zip(got, expected))


def train(spec: DetectorTraining, progress: Callable[[str], None] = print) -> Path:
    """Trains (or resumes) the run in ``spec.out`` and writes ``spec.out/detector.onnx``; returns its path."""
    if spec.minutes is not None and spec.minutes <= 0:
        raise ConfigError(f"--minutes: must be above 0, got {spec.minutes:g}")
    if spec.epochs < 1 or spec.batch < 1:
        raise ConfigError(f"--epochs and --batch: must be 1 or more, got {spec.epochs} and {spec.batch}")
    if not 0 <= spec.frozen_share < 1:
        raise ConfigError(f"--frozen-share: must be at least 0 and below 1, got {spec.frozen_share}")
    if not 0 <= spec.occluders_alone <= 1:
        raise ConfigError(f"--occluders-alone: a share from 0 to 1, got {spec.occluders_alone}")
    if spec.canvas < 64 or spec.canvas % 32:
        raise ConfigError(f"--canvas: a multiple of 32 from 64 px (the detectors' strides), got {spec.canvas}")
    last = checked_run_folder(spec.out, spec.resume, None, "detector", ("detector.onnx",))
    if spec.device == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - spec.workers))
    run = _Run(spec, progress)  # a bad teacher, faces or backgrounds are refused before the run folder is made
    spec.out.mkdir(parents=True, exist_ok=True)
    if spec.resume:
        run.restore(last)
    teacher = run.val_teacher
    trainable = sum(p.numel() for p in run.student.parameters() if p.requires_grad)
    progress(f"training a student of {spec.teacher.name} ({trainable / 1e6:.2f} M trainable parameters) on "
             f"{run.device}: {len(run.train_set.faces)} training "
             f"faces, {len(run.train_set)} canvases of {spec.canvas} px an epoch, "
             f"{len(run.train_set.backgrounds)} scene frames, {len(run.train_set.surroundings)} portraits' "
             f"surroundings; validation: {len(run.val)} occluded faces, the teacher "
             f"finds {teacher['found']:.1%} at {run.heads.threshold}")
    run.run()
    recipe = {"teacher": spec.teacher.name, "teacher_sha256_12": run.fingerprint,
              "faces": [str(f) for f in spec.faces], "backgrounds": [str(b) for b in spec.backgrounds or []],
              "surroundings": str(spec.surroundings) if spec.surroundings else None,
              "training_faces": len(run.train_set.faces),
              **{k: v for k, v in asdict(spec).items()
                 if k in ("canvas", "batch", "lr", "frozen_share", "seed", "occluders_alone")}}
    out = spec.out / "detector.onnx"
    difference = export(run, out, recipe)
    progress(f"detector.onnx: ONNX Runtime vs torch, max |difference| of the outputs {difference:.1e}")
    if difference > 1e-3:
        raise ModelError(f"{out}: ONNX Runtime and torch disagree by {difference:.1e}; the export is not usable")
    progress(f"use it as detector.model, backend {run.heads.backend}")
    return out
