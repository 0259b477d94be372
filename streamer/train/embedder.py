"""Trains a mask-robust student of a face embedder, without identity labels.

    streamer train embedder --teacher EMB.onnx|dlib --faces BANK [BANK ...] --out RUN
        [--occluders DIR] [--exclude-like BANK] [--exclude-by EMB.onnx] [--minutes M | --epochs N]
        [--contrast W [--temperature T]] [--misalign S] [--hide-occluders S] [--points FILE] [--init STUDENT.onnx]
        [--device cpu|cuda] [--resume]

The student starts as a copy of the teacher (rebuilt in torch: ``streamer/train/teachers.py``) and learns
to give a face as a camera sees it (occluders of the data engine, camera faults) the teacher's embedding of
the same face clean, while clean faces keep the teacher's embedding. With ``--contrast``, an occluded face
is also taught to sit nearer its own target than any other training face's. So the stream embeds probes with the
student and keeps the teacher's gallery: nothing enrolled has to be embedded again. With ``--init``, it starts
from a student trained before (of the same teacher) instead: a new run that goes on teaching it, e.g. a GPU run's
student taught on a CPU what it was not shown.

Any ArcFace-layout ONNX can be the teacher (buffalo_l's w600k_r50 on a GPU; MobileFaceNet on a CPU), and
dlib's ResNet descriptor (``--teacher dlib``).
Faces come from face banks (``streamer data faces``); their train split trains, their val split
validates. ``--exclude-like`` drops training faces the teacher (or the ArcFace model ``--exclude-by`` names,
which also judges who is one person for ``--contrast``) finds like any face of another bank (the evaluation
people: celebrity sets share people, and a student must not have seen them).

Per epoch: one progress line every ``log_every`` steps; validation (cosine of the student's embedding of
the occluded face, and of the clean face, to the teacher's of the clean face; the teacher's own occluded
figure beside them; for dlib, whose descriptors share a large common part, cosines around their mean, as
its loss takes them); ``last.pt`` written atomically (resumable), ``best.pt`` on the best validation loss.
At the end the best weights become ``student.onnx`` (the teacher's network with new weights, the teacher's
fingerprint in its metadata), checked against torch.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from streamer.datagen.compose import ComposeSettings
from streamer.datagen.face_bank import BankFace, train_and_val
from streamer.datagen.occluders import OccluderLibrary
from streamer.embed.student import fingerprint
from streamer.errors import ConfigError, ModelError
from streamer.train.embedder_data import OccludedAndClean, StreamCut, validation_set
from streamer.train.epochs import descend, epoch_loader, freeze_early, save_checkpoint, scheduled_rate
from streamer.train.exclusion import bank_embeddings, excluded_embeddings, unlike
from streamer.train.run_folder import checked_run_folder
from streamer.train.teachers import BATCH, embed, teacher_from

CHECKPOINT_FORMAT = "streamer-student-1"
VALIDATION_FACES = 512


@dataclass
class EmbedderTraining:
    teacher: Path | str  # an ArcFace-layout .onnx, or 'dlib'
    faces: list[Path]
    out: Path
    occluders: Path | None = None
    exclude_like: list[Path] | None = None
    exclude_by: Path | None = None  # the ArcFace .onnx that judges --exclude-like and --contrast; default: the teacher
    epochs: int = 10
    minutes: float | None = None  # a time budget: the LR schedule follows elapsed time
    batch: int = 32
    lr: float = 5e-5
    clean_weight: float = 1.0  # how much keeping clean faces in place counts beside mapping occluded ones
    # How much the contrast term counts: an occluded face's embedding must be nearer its own clean face's target
    # than every other training face's (softmax over all of them at ``temperature``). The cosine terms pull
    # towards the target in every direction alike; an error towards another person is what names the wrong one.
    contrast: float = 0.0
    temperature: float = 0.1
    # The first share of the weights, in graph order, stays the teacher's: the early high-resolution layers
    # cost most of the backward pass (MobileFaceNet on 2 CPU cores: 8.5 samples/s all trained, about 15 with
    # the first half frozen). Trained all the same by default: with fewer steps in the same time, both CPU
    # recipes gained under every occluder (MobileFaceNet's and dlib's students, STUDENT.md).
    frozen_share: float = 0.0
    # The share of faces as seen cut by landmarks off by about what an occluder does to a detector's
    # (datagen/misalign.py): the stream aligns occluded faces by such landmarks.
    misalign: float = 0.0
    # Teach each face the teacher's embedding of it and of its mirror image added (what a mirrored gallery holds:
    # embedder.mirror, the default), and show the student faces either way round. May be switched on when a
    # run is resumed: it changes the targets, not the network.
    mirror: bool = False
    # The share of occluded faces as seen whose occluder pixels are hidden (embed/hiding.py) before the student
    # sees them: a student taught so is given the faces hidden where the segmenter found an occluder. May be
    # switched on when a run is resumed: it changes the inputs, not the network.
    hide_occluders: float = 0.0
    # dlib's teacher only: cut each face as the stream's dlib stage cuts it (StreamCut): the face as seen by the points
    # of this student of dlib's predictor (embedder.student_points), the clean face and the targets by dlib's own.
    # None: every face cut by the layout's points, as the bank aligned it.
    points: Path | None = None
    init: Path | None = None  # a student ONNX of the same teacher to start from, instead of the teacher itself
    device: str = "cpu"
    workers: int = 1
    seed: int = 0
    log_every: int = 50
    resume: bool = False
    limit: int | None = None  # training faces at most (quick recipes and tests)
    samples_per_epoch: int | None = None


class _Run:
    def __init__(self, spec: EmbedderTraining, progress: Callable[[str], None]):
        self.spec, self.progress = spec, progress
        self.device = torch.device("cuda" if spec.device in ("cuda", "0") else spec.device)
        torch.manual_seed(spec.seed)
        self.source = teacher_from(spec.teacher, "cuda" if self.device.type == "cuda" else "cpu")
        self.teacher = self.source.network(trainable=False).to(self.device).eval()
        self.student = self.source.network(trainable=True).to(self.device).train()
        if spec.init:
            self.student.load_state_dict(self.source.student_network(spec.init).state_dict())
        freeze_early(self.student, spec.frozen_share)
        self.judge = (teacher_from(spec.exclude_by, "cuda" if self.device.type == "cuda" else "cpu", "--exclude-by")
                      if spec.exclude_by and (spec.exclude_like or spec.contrast) else self.source)
        for flag, used in (("--exclude-like", spec.exclude_like), ("--contrast", spec.contrast)):
            if used and self.judge.same_person is None:
                raise ConfigError(f"{flag}: {self.judge.name} cannot tell whether two faces are one person well "
                                  f"enough to judge it; name an ArcFace-layout .onnx to judge with --exclude-by")
        if spec.points is not None and spec.teacher != "dlib":
            raise ConfigError("--points: only with --teacher dlib (it cuts dlib's chips)")
        self.cut = StreamCut(spec.points) if spec.points is not None else None
        if self.cut is not None:
            self.cut.seen(np.zeros((self.source.size, self.source.size, 3), np.uint8))  # a bad file: one line, now
        train_faces, val_faces = train_and_val(spec.faces, "--faces", spec.limit)
        library = OccluderLibrary(spec.occluders)
        self.dropped = 0  # faces left out by --exclude-like
        # The teacher's embeddings of every clean face, once: the training targets (and what --exclude-like
        # compares, where the teacher judges).
        progress(f"teacher embeddings of {len(train_faces)} training faces")
        size = self.source.size
        moved = (lambda image: self.cut.clean(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA))) \
            if self.cut is not None else None
        targets = bank_embeddings(self.source, train_faces, mirror=spec.mirror, moved=moved)
        judged = None  # the judge's embeddings of the training faces
        if spec.exclude_like:
            train_faces, val_faces, targets, judged = self._drop_like(train_faces, val_faces, targets,
                                                                      spec.exclude_like)
        self.targets = torch.from_numpy(targets).to(self.device)
        # Where the teacher's embeddings share a large common part (dlib's), agreement is measured around their
        # mean: what tells faces apart is what the student must get right.
        self.centre = self.targets.mean(0) if self.source.centred else None
        # The contrast term's other faces, and which of them the judge takes for the same person (no identity
        # labels: a photo of the same person is not a face to be pushed away from).
        self.alike_judged = self.others = None
        if spec.contrast:
            if judged is None:
                judged = targets if self.judge is self.source else bank_embeddings(self.judge, train_faces)
            self.alike_judged = torch.from_numpy(judged).to(self.device)
            self.others = (self.targets if self.centre is None
                           else F.normalize(self.targets - self.centre, dim=1))
        if not train_faces or not val_faces:
            raise ConfigError(f"--exclude-like: every {'training' if not train_faces else 'validation'} face is like "
                              f"an excluded face; nothing is left to train on")
        self.train_set = OccludedAndClean(train_faces, library, self.source.size, spec.seed,
                                          samples_per_epoch=spec.samples_per_epoch, misalign_share=spec.misalign,
                                          hide_share=spec.hide_occluders, cut=self.cut)
        if len(self.train_set) < spec.batch:
            raise ConfigError(f"--batch: {spec.batch} is more than the {len(self.train_set)} samples of an epoch "
                              f"(--limit / --samples-per-epoch): no step would be taken")
        val_source = OccludedAndClean(val_faces, library, self.source.size, spec.seed,
                                      settings=ComposeSettings(clean_share=0.0, degrade_share=0.7),
                                      hide_share=spec.hide_occluders, cut=self.cut)
        self.val = [t.to(self.device) for t in validation_set(val_source, VALIDATION_FACES)]
        with torch.no_grad():
            self.val_targets = self._embed(self.teacher, self.val[1])
            seen_by_teacher = self._embed(self.teacher, self.val[0])
            self.val_teacher_seen = float(self.agreement(seen_by_teacher, self.val_targets).mean())
        trainable = [p for p in self.student.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, spec.lr, weight_decay=0.0)
        self.epoch, self.step, self.seconds = 0, 0, 0.0
        self.history: list[dict] = []
        self.best = float("inf")

    def agreement(self, embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(n,) cosine of each unit embedding to its target's, around the teachers' mean where it is centred."""
        if self.centre is None:
            return (embeddings * targets).sum(1)
        return F.cosine_similarity(embeddings - self.centre, targets - self.centre, dim=1)

    def _embed(self, net: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Unit embeddings of ``images``, each with its mirror image's where the run is mirrored (as the stream
        describes faces then)."""
        single = self._embed_single(net, images)
        return F.normalize(single + self._embed_single(net, images.flip(3)), dim=1) if self.spec.mirror else single

    def _embed_single(self, net: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([embed(self.source, net, images[s:s + BATCH]) for s in range(0, len(images), BATCH)])

    def _drop_like(self, train_faces: list[BankFace], val_faces: list[BankFace], targets: np.ndarray,
                   banks: list[Path]) -> tuple[list[BankFace], list[BankFace], np.ndarray, np.ndarray]:
        judge = self.judge
        excluded = excluded_embeddings(judge, banks)
        judged = targets if judge is self.source else bank_embeddings(judge, train_faces)
        keep_train = unlike(judged, excluded, judge.same_person)
        keep_val = unlike(bank_embeddings(judge, val_faces), excluded, judge.same_person)
        self.dropped = int((~keep_train).sum() + (~keep_val).sum())
        self.progress(f"--exclude-like: {self.dropped} bank faces dropped ({judge.name} cosine >= "
                      f"{judge.same_person} to one of {len(excluded)} excluded faces)")
        return ([f for f, k in zip(train_faces, keep_train) if k], [f for f, k in zip(val_faces, keep_val) if k],
                targets[keep_train], judged[keep_train])

    # -- checkpoints -------------------------------------------------------------------------

    def save(self, name: str) -> Path:
        path = self.spec.out / name
        state = {"format": CHECKPOINT_FORMAT, "teacher": self.source.fingerprint,
                 "student": self.student.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "epoch": self.epoch, "step": self.step, "seconds": self.seconds, "best": self.best,
                 "history": self.history, "contrast": self.spec.contrast, "temperature": self.spec.temperature,
                 "frozen_share": self.spec.frozen_share, "misalign": self.spec.misalign, "mirror": self.spec.mirror,
                 "hide_occluders": self.spec.hide_occluders,
                 "points": fingerprint(self.spec.points) if self.spec.points else None}
        return save_checkpoint(state, path)

    def restore(self, path: Path) -> None:
        state = torch.load(str(path), map_location=self.device, weights_only=True)
        if state.get("format") != CHECKPOINT_FORMAT or state.get("teacher") != self.source.fingerprint:
            raise ConfigError(f"--resume: {path} is not a student run of --teacher {self.spec.teacher}")
        trained = (state.get("contrast", 0.0), state.get("temperature", 0.1))
        if trained != (self.spec.contrast, self.spec.temperature):
            raise ConfigError(f"--resume: {path} was trained with --contrast {trained[0]:g} --temperature "
                              f"{trained[1]:g}; pass the same to continue it")
        frozen = state.get("frozen_share")  # absent from checkpoints of before 2026-12-04
        if frozen is not None and frozen != self.spec.frozen_share:
            raise ConfigError(f"--resume: {path} was trained with --frozen-share {frozen:g}; pass the same to "
                              "continue it")
        misalign = state.get("misalign", 0.0)  # absent from checkpoints of before it existed: none
        if misalign != self.spec.misalign:
            raise ConfigError(f"--resume: {path} was trained with --misalign {misalign:g}; pass the same to "
                              "continue it")
        points = fingerprint(self.spec.points) if self.spec.points else None
        if state.get("points") != points:  # absent from checkpoints of before it existed: none
            raise ConfigError(f"--resume: {path} was trained with "
                              f"{'--points of ' + state['points'] if state.get('points') else 'no --points'}; "
                              "pass the same to continue it")
        self.student.load_state_dict(state["student"])
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError:  # the optimizer held another set of weights: another share was frozen
            raise ConfigError(f"--resume: {path} was trained with another --frozen-share (0.5 was the default "
                              "before 2026-12-04); pass the same to continue it") from None
        self.epoch, self.step, self.seconds = state["epoch"], state["step"], state["seconds"]
        self.best, self.history = state["best"], state["history"]
        self.progress(f"resumed {path}: epoch {self.epoch} done, {self.seconds / 60:.1f} min trained")
        if state.get("mirror", False) != self.spec.mirror:  # validation losses of other targets do not compare
            self.best = float("inf")
            self.progress(f"--mirror {'on' if self.spec.mirror else 'off'} from here: best.pt is chosen anew")
        if state.get("hide_occluders", 0.0) != self.spec.hide_occluders:  # nor do those of other inputs
            self.best = float("inf")
            self.progress(f"--hide-occluders {self.spec.hide_occluders:g} from here: best.pt is chosen anew")

    # -- training ----------------------------------------------------------------------------

    def loss(self, seen: torch.Tensor, clean: torch.Tensor, faces: torch.Tensor) -> dict[str, torch.Tensor]:
        target = self.targets[faces]
        if self.spec.mirror:  # the targets are the same either way round
            flip = torch.rand(len(faces), device=faces.device) < 0.5
            seen, clean = (torch.where(flip[:, None, None, None], t.flip(3), t) for t in (seen, clean))
        both = embed(self.source, self.student, torch.cat([seen, clean]))
        on_seen = self.agreement(both[:len(seen)], target).mean()
        on_clean = self.agreement(both[len(seen):], target).mean()
        terms = {"loss": (1 - on_seen) + self.spec.clean_weight * (1 - on_clean), "seen": on_seen, "clean": on_clean}
        if self.spec.contrast:
            terms["contrast"] = self.contrast(both[:len(seen)], faces)
            terms["loss"] = terms["loss"] + self.spec.contrast * terms["contrast"]
        return terms

    def contrast(self, embeddings: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of each embedding's own face among all training faces' targets, the faces the judge
        takes for the same person left out."""
        if self.centre is not None:
            embeddings = F.normalize(embeddings - self.centre, dim=1)
        logits = embeddings @ self.others.T / self.spec.temperature
        alike = (self.alike_judged[faces] @ self.alike_judged.T) >= self.judge.same_person
        alike[torch.arange(len(faces), device=faces.device), faces] = False
        return F.cross_entropy(logits.masked_fill(alike, float("-inf")), faces)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.student.eval()
        seen, clean, _ = self.val
        on_seen = float(self.agreement(self._embed(self.student, seen), self.val_targets).mean())
        on_clean = float(self.agreement(self._embed(self.student, clean), self.val_targets).mean())
        self.student.train()
        return {"val_loss": (1 - on_seen) + self.spec.clean_weight * (1 - on_clean), "val_seen_student": on_seen,
                "val_seen_teacher": self.val_teacher_seen, "val_clean_student": on_clean}

    def run(self) -> Path:
        spec = self.spec
        while not self._done():
            loader = epoch_loader(self.train_set, spec.batch, spec.workers, spec.seed, self.epoch)
            started, seconds_before, sums, count = time.monotonic(), self.seconds, {}, 0
            for index, (seen, clean, faces) in enumerate(loader):
                lr = scheduled_rate(self.optimizer, spec.lr, self.seconds / (spec.minutes * 60) if spec.minutes
                                    else (self.epoch + index / max(len(loader), 1)) / spec.epochs)
                terms = self.loss(seen.to(self.device), clean.to(self.device), faces.to(self.device))
                descend(self.optimizer, terms, sums)
                self.step, count = self.step + 1, count + 1
                self.seconds = seconds_before + time.monotonic() - started
                if self.step % spec.log_every == 0:
                    rate = count * spec.batch / max(time.monotonic() - started, 1e-6)
                    contrast = f", contrast {sums['contrast'] / count:.3f}" if "contrast" in sums else ""
                    self.progress(f"epoch {self.epoch + 1} step {index + 1}/{len(loader)}: loss "
                                  f"{sums['loss'] / count:.4f} (occluded cos {sums['seen'] / count:.3f}, clean "
                                  f"{sums['clean'] / count:.3f}{contrast}; epoch means) lr {lr:.1e}, "
                                  f"{rate:.1f} samples/s")
                if spec.minutes is not None and self.seconds >= spec.minutes * 60:
                    break
            self.epoch += 1
            record = {"epoch": self.epoch, "seconds": round(self.seconds, 1), "steps": self.step, "mirror": spec.mirror,
                      "hide_occluders": spec.hide_occluders,
                      **{f"train_{k}": round(v / max(count, 1), 5) for k, v in sums.items()},
                      **{k: round(v, 5) for k, v in self.validate().items()}}
            self.history.append(record)
            self.progress(f"epoch {self.epoch}: validation cosine to the teacher's clean embedding: occluded "
                          f"{record['val_seen_teacher']:.3f} (teacher) -> {record['val_seen_student']:.3f} (student), "
                          f"clean {record['val_clean_student']:.3f}; {self.seconds:.0f} s")
            if record["val_loss"] < self.best:  # before last.pt, so that a resumed run knows the best so far
                self.best = record["val_loss"]
                self.save("best.pt")
            self.save("last.pt")
            (spec.out / "history.json").write_text(json.dumps(self.history, indent=1))
        return spec.out / "best.pt"

    def _done(self) -> bool:
        if self.spec.minutes is not None:
            return self.seconds >= self.spec.minutes * 60
        return self.epoch >= self.spec.epochs


def export(run: _Run, out: Path, recipe: dict) -> tuple[Path, float]:
    """``best.pt`` as ``out``, and the largest difference between ONNX Runtime's and torch's embeddings of the
    same faces."""
    state = torch.load(str(run.spec.out / "best.pt"), map_location="cpu", weights_only=True)
    student = run.source.network(trainable=False)
    student.load_state_dict(state["student"])
    trained = {"epochs": state["epoch"], "minutes": round(state["seconds"] / 60, 1),
               "validation": state["history"][-1] if state["history"] else None}
    return out, run.source.export(student, out, {**recipe, **trained})


def train(spec: EmbedderTraining, progress: Callable[[str], None] = print) -> Path:
    """Trains (or resumes) the run in ``spec.out`` and writes ``spec.out/student.onnx``; returns its path."""
    if not 0 <= spec.frozen_share < 1:
        raise ConfigError(f"--frozen-share: must be at least 0 and below 1, got {spec.frozen_share}")
    if spec.minutes is not None and spec.minutes <= 0:
        raise ConfigError(f"--minutes: must be above 0, got {spec.minutes:g}")
    if spec.contrast < 0:
        raise ConfigError(f"--contrast: must be 0 or more, got {spec.contrast:g}")
    if spec.temperature <= 0:
        raise ConfigError(f"--temperature: must be above 0, got {spec.temperature:g}")
    if not 0 <= spec.misalign <= 1:
        raise ConfigError(f"--misalign: a share of the faces, from 0 to 1, got {spec.misalign:g}")
    if not 0 <= spec.hide_occluders <= 1:
        raise ConfigError(f"--hide-occluders: a share of the occluded faces, from 0 to 1, got {spec.hide_occluders:g}")
    if spec.epochs < 1 or spec.batch < 1:
        raise ConfigError(f"--epochs and --batch: must be 1 or more, got {spec.epochs} and {spec.batch}")
    last = checked_run_folder(spec.out, spec.resume, spec.init, "student", ("student.onnx",))
    if spec.device == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - spec.workers))
    run = _Run(spec, progress)  # a bad teacher or bad faces are refused before the run folder is made
    spec.out.mkdir(parents=True, exist_ok=True)
    if spec.resume:
        run.restore(last)
    trainable = sum(p.numel() for p in run.student.parameters() if p.requires_grad)
    progress(f"training a student of {run.source.name} ({trainable / 1e6:.2f} M trainable parameters, "
             f"{run.source.size} px faces) on {run.device}: {len(run.train_set.faces)} training faces, "
             f"{len(run.train_set)} samples an epoch, {len(run.val[0])} validation faces")
    run.run()
    recipe = {"teacher": run.source.name, "teacher_sha256_12": run.source.fingerprint,
              "faces": [str(f) for f in spec.faces], "excluded_like": [str(f) for f in spec.exclude_like or []],
              "excluded_by": run.judge.name if spec.exclude_like else None,
              "contrast_judged_by": run.judge.name if spec.contrast else None,
              "dropped_as_like_excluded": run.dropped, "training_faces": len(run.train_set.faces),
              **{k: v for k, v in asdict(spec).items()
                 if k in ("batch", "lr", "clean_weight", "contrast", "temperature", "frozen_share", "misalign",
                          "mirror", "hide_occluders", "seed")},
              **({"init": {"file": spec.init.name, "sha256_12": fingerprint(spec.init)}} if spec.init else {}),
              **({"points": {"file": spec.points.name, "sha256_12": fingerprint(spec.points)}} if spec.points else {})}
    out, difference = export(run, spec.out / "student.onnx", recipe)
    progress(f"student.onnx: ONNX Runtime vs torch, max |difference| of the embeddings {difference:.1e}")
    if difference > 1e-3:
        raise ModelError(f"{out}: ONNX Runtime and torch disagree by {difference:.1e}; the export is not usable")
    return out
