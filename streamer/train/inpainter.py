"""Trains a face inpainter on pairs composed on the fly from a face bank.

    streamer train inpainter --bank BANK [BANK ...] --occluders DIR --arch pconv_unet|dual_encoder --out RUN
        [--size 128] [--upsample nearest|bilinear] [--epochs N | --minutes M] [--identity-model EMBEDDER.onnx]
        [--exclude-like BANK ...]
        [--init RUN/best.pt | MODEL.onnx] [--device cpu|cuda] [--resume]

Per epoch: one pass over the bank's training faces with newly drawn occluders; one progress line
every ``log_every`` steps; validation on the bank's val faces (hole L1, PSNR, identity similarity
when an embedder is given); a PNG grid of validation samples (occluded | reconstruction | original);
``last.pt`` written atomically (resumable: model, optimisers, epoch, history), and ``best.pt`` when
the validation hole L1 improves. ``dual_encoder`` trains against a global and a local discriminator
(LSGAN); ``pconv_unet`` without, as in its paper.

Several banks train as one; the validation faces alternate between them. ``--exclude-like`` leaves out the
training and validation faces that the identity model takes for a person of the banks named (the
evaluation's people: celebrity sets share people). ``--init`` starts from a run's checkpoint or from an
ONNX this project exported (the shipped weights, read back and checked against ONNX Runtime). The decoder's
upsampling is the --init's (or the resumed run's) unless ``--upsample`` says otherwise: nearest weights fine-tuned
into a bilinear decoder is how the checker texture of a nearest decoder is trained away.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from streamer.datagen.face_bank import BankFace, train_and_val
from streamer.datagen.occluders import OccluderLibrary
from streamer.errors import ConfigError
from streamer.inpaint.nets import CHECKPOINT_FORMAT, DEFAULT_UPSAMPLING, InpaintingNet, load_net
from streamer.inpaint.nets.discriminators import GlobalDiscriminator, LocalDiscriminator, hole_boxes
from streamer.train.epochs import epoch_loader, save_checkpoint
from streamer.train.exclusion import bank_embeddings, excluded_embeddings, unlike
from streamer.train.inpainter_data import ComposedPairs, to_bgr, validation_batch
from streamer.train.inpainter_losses import (
    FaceFeatures,
    LossWeights,
    generator_losses,
    lsgan_fake,
    lsgan_real,
    weighted_total,
)
from streamer.train.run_folder import checked_run_folder
from streamer.train.schedule import warmup_cosine

VALIDATION_FACES = 256
GRID_FACES = 8


@dataclass
class InpainterTraining:
    banks: list[Path]
    out: Path
    occluders: Path | None = None
    arch: str = "pconv_unet"
    base: int = 32
    size: int = 128
    upsample: str | None = None  # the decoder's; default: the --init's, else DEFAULT_UPSAMPLING. An --init of the
    # other kind is fine-tuned into it
    epochs: int = 20
    minutes: float | None = None  # a time budget: the LR schedule follows elapsed time, the last epoch ends in it
    batch: int = 32
    lr: float = 2e-4
    device: str = "cpu"
    workers: int = 2
    seed: int = 0
    identity_model: Path | None = None  # ArcFace-type ONNX: perceptual, style and identity terms
    exclude_like: list[Path] | None = None  # banks whose people are not trained on (judged by identity_model)
    adversarial: bool | None = None  # default: on for dual_encoder
    weights: LossWeights = field(default_factory=LossWeights)
    log_every: int = 50
    resume: bool = False
    init: Path | None = None  # start from this checkpoint's or exported ONNX's generator (new optimiser, schedule)
    limit: int | None = None  # training faces at most (quick recipes and tests)
    samples_per_epoch: int | None = None  # default: one per training face

    @property
    def uses_gan(self) -> bool:
        return self.arch == "dual_encoder" if self.adversarial is None else self.adversarial


class _Run:
    """Everything one training run holds: networks, optimisers, data, history."""

    def __init__(self, spec: InpainterTraining, progress: Callable[[str], None]):
        self.spec, self.progress = spec, progress
        self.device = torch.device("cuda" if spec.device in ("cuda", "0") else spec.device)
        torch.manual_seed(spec.seed)
        library = OccluderLibrary(spec.occluders)
        # In turn from each bank: the validation set's first faces and a --limit's come from every bank alike.
        train_faces, val_faces = train_and_val(spec.banks, "--bank", interleave=True)
        self.dropped = 0
        if spec.exclude_like:
            train_faces, val_faces = self._drop_like(train_faces, val_faces)
        train_faces = train_faces[: spec.limit] if spec.limit else train_faces
        self.train_set = ComposedPairs(train_faces, library, spec.size, spec.seed,
                                       samples_per_epoch=spec.samples_per_epoch)
        self.val_set = ComposedPairs(val_faces, library, spec.size, spec.seed)
        self.val = [t.to(self.device) for t in validation_batch(self.val_set, VALIDATION_FACES)]
        self.net = InpaintingNet(spec.arch, spec.base, spec.size, spec.upsample).to(self.device)
        self.features = FaceFeatures(spec.identity_model).to(self.device) if spec.identity_model else None
        self.optimizer = torch.optim.AdamW(self.net.parameters(), spec.lr, betas=(0.5, 0.999), weight_decay=0.0)
        self.discriminators = None
        if spec.uses_gan:
            self.discriminators = torch.nn.ModuleDict({"global": GlobalDiscriminator(),
                                                       "local": LocalDiscriminator()}).to(self.device)
            self.d_optimizer = torch.optim.AdamW(self.discriminators.parameters(), spec.lr, betas=(0.5, 0.999),
                                                 weight_decay=0.0)
        self.amp = self.device.type == "cuda"
        self.epoch, self.step, self.seconds = 0, 0, 0.0
        self.history: list[dict] = []
        self.best = math.inf

    def _drop_like(self, train_faces: list[BankFace], val_faces: list[BankFace]):
        from streamer.train.teachers import teacher_from

        judge = teacher_from(self.spec.identity_model, "cuda" if self.device.type == "cuda" else "cpu",
                             "--identity-model")
        excluded = excluded_embeddings(judge, self.spec.exclude_like)
        kept = []
        for faces in (train_faces, val_faces):
            keep = unlike(bank_embeddings(judge, faces), excluded, judge.same_person)
            self.dropped += int((~keep).sum())
            kept.append([f for f, k in zip(faces, keep) if k])
        self.progress(f"--exclude-like: {self.dropped} bank faces dropped ({judge.name} cosine >= "
                      f"{judge.same_person} to one of {len(excluded)} excluded faces)")
        if not kept[0] or not kept[1]:
            raise ConfigError("--exclude-like: every training or validation face is like an excluded face; "
                              "nothing is left to train on")
        return kept[0], kept[1]

    # -- checkpoints -------------------------------------------------------------------------

    def state(self) -> dict:
        state = {"format": CHECKPOINT_FORMAT,
                 "generator": self.net.checkpoint(spec=_jsonable(asdict(self.spec)), epoch=self.epoch,
                                                  history=self.history),
                 "optimizer": self.optimizer.state_dict(), "epoch": self.epoch, "step": self.step,
                 "seconds": self.seconds, "best": self.best}
        if self.discriminators is not None:
            state["discriminators"] = self.discriminators.state_dict()
            state["d_optimizer"] = self.d_optimizer.state_dict()
        return state

    def restore(self, path: Path) -> None:
        state = torch.load(str(path), map_location=self.device, weights_only=True)
        generator = state["generator"]
        kind = (generator["arch"], generator["base"], generator["size"], generator.get("upsample", "nearest"))
        if kind != (self.spec.arch, self.spec.base, self.spec.size, self.spec.upsample):
            raise ConfigError(f"--resume: {path} is a {kind[0]} (base {kind[1]}, {kind[2]} px, {kind[3]} "
                              f"upsampling) run, not this one")
        self.net.load_state_dict(generator["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.discriminators is not None and "discriminators" in state:
            self.discriminators.load_state_dict(state["discriminators"])
            self.d_optimizer.load_state_dict(state["d_optimizer"])
        self.epoch, self.step, self.seconds = state["epoch"], state["step"], state["seconds"]
        self.best, self.history = state["best"], generator["meta"]["history"]
        self.progress(f"resumed {path}: epoch {self.epoch} done, {self.seconds / 60:.1f} min trained")

    def save(self, name: str) -> Path:
        return save_checkpoint(self.state(), self.spec.out / name)

    # -- training ----------------------------------------------------------------------------

    def learning_rate(self, epoch_fraction: float) -> float:
        """Linear warm-up over the first 2% of training, then cosine to 5% of the peak."""
        spec = self.spec
        return warmup_cosine(spec.lr, (self.seconds / (spec.minutes * 60)) if spec.minutes
                             else epoch_fraction / spec.epochs)

    def train_step(self, occluded, original, hole, lr: float) -> dict[str, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            raw = (self.net.raw(occluded, hole).float() + 1.0) * 0.5
            composite = occluded * (1.0 - hole) + raw * hole
            terms = generator_losses(raw, composite, original, hole, self.features, self.spec.weights)
            if self.discriminators is not None:
                boxes = hole_boxes(hole.detach().cpu())
                terms["adversarial"] = (lsgan_real(self.discriminators["global"](composite))
                                        + lsgan_real(self.discriminators["local"](composite, boxes)))
            loss = weighted_total(terms, self.spec.weights)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
        self.optimizer.step()
        if self.discriminators is not None:
            for group in self.d_optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                fake = composite.detach()
                d_loss = (lsgan_real(self.discriminators["global"](original))
                          + lsgan_fake(self.discriminators["global"](fake))
                          + lsgan_real(self.discriminators["local"](original, boxes))
                          + lsgan_fake(self.discriminators["local"](fake, boxes))) * 0.5
            self.d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self.d_optimizer.step()
            terms["discriminator"] = d_loss
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items()}}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.net.eval()
        occluded, original, hole = self.val
        outputs = []
        for start in range(0, len(occluded), 64):
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                outputs.append(self.net(occluded[start:start + 64], hole[start:start + 64]).float())
        output = torch.cat(outputs)
        self.net.train()
        hole_pixels = hole.sum(dim=(1, 2, 3)).clamp(min=1) * 3
        hole_l1 = ((output - original).abs() * hole).sum(dim=(1, 2, 3)) / hole_pixels
        mse = ((output - original) ** 2).mean(dim=(1, 2, 3)).clamp(min=1e-10)
        metrics = {"val_hole_l1": float(hole_l1.mean()), "val_psnr": float((10 * torch.log10(1.0 / mse)).mean())}
        if self.features is not None:
            reference, _ = self.features(original)
            before, _ = self.features(occluded)
            after, _ = self.features(output)
            metrics["val_identity_occluded"] = float((reference * before).sum(1).mean())
            metrics["val_identity_reconstructed"] = float((reference * after).sum(1).mean())
        self._grid(occluded[:GRID_FACES], output[:GRID_FACES], original[:GRID_FACES], hole[:GRID_FACES])
        return metrics

    def _grid(self, occluded, output, original, hole) -> None:
        """Rows: occluded (hole outlined) | reconstruction | original."""
        columns = []
        for o, r, t, h in zip(occluded, output, original, hole):
            shown = to_bgr(o)
            contours, _ = cv2.findContours(h[0].cpu().numpy().astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(shown, contours, -1, (255, 0, 255), 1)
            columns.append(np.vstack([shown, to_bgr(r), to_bgr(t)]))
        folder = self.spec.out / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"epoch_{self.epoch:03d}.png"), np.hstack(columns))

    def run(self) -> Path:
        spec = self.spec
        while True:
            if spec.minutes is None and self.epoch >= spec.epochs:
                break
            if spec.minutes is not None and self.seconds >= spec.minutes * 60:
                break
            loader = epoch_loader(self.train_set, spec.batch, spec.workers, spec.seed, self.epoch,
                                  pin_memory=self.amp, persistent_workers=False)
            started, sums, count = time.monotonic(), {}, 0
            seconds_before = self.seconds
            for index, (occluded, original, hole) in enumerate(loader):
                occluded, original, hole = (t.to(self.device, non_blocking=True) for t in (occluded, original, hole))
                lr = self.learning_rate(self.epoch + index / max(len(loader), 1))
                figures = self.train_step(occluded, original, hole, lr)
                self.step += 1
                count += 1
                for k, v in figures.items():
                    sums[k] = sums.get(k, 0.0) + v
                self.seconds = seconds_before + time.monotonic() - started
                if self.step % spec.log_every == 0:
                    rate = count * spec.batch / max(time.monotonic() - started, 1e-6)
                    self.progress(f"epoch {self.epoch + 1} step {index + 1}/{len(loader)}: loss {figures['loss']:.4f} "
                                  f"(hole {figures['hole']:.4f}) lr {lr:.2e}, {rate:.0f} samples/s")
                if spec.minutes is not None and self.seconds >= spec.minutes * 60:
                    break
            self.epoch += 1
            record = {"epoch": self.epoch, "seconds": round(self.seconds, 1), "steps": self.step,
                      **{f"train_{k}": round(v / max(count, 1), 5) for k, v in sums.items()},
                      **{k: round(v, 5) for k, v in self.validate().items()}}
            self.history.append(record)
            total = f"/{spec.epochs}" if spec.minutes is None else f" ({self.seconds / 60:.1f}/{spec.minutes:g} min)"
            identity = ""
            if "val_identity_reconstructed" in record:
                identity = (f", identity {record['val_identity_occluded']:.3f} -> "
                            f"{record['val_identity_reconstructed']:.3f}")
            self.progress(f"epoch {self.epoch}{total}: val hole L1 {record['val_hole_l1']:.4f}, "
                          f"PSNR {record['val_psnr']:.2f} dB{identity}, {self.seconds:.0f} s")
            self.save("last.pt")
            if record["val_hole_l1"] < self.best:
                self.best = record["val_hole_l1"]
                self.save("best.pt")
            (spec.out / "history.json").write_text(json.dumps(self.history, indent=1))
        return spec.out / "best.pt"


def _read_net(flag: str, path: Path):
    """The network of an --init or --resume file, or a one-line ConfigError naming the flag and the file."""
    if not path.is_file():
        raise ConfigError(f"{flag}: not found: {path}")
    try:
        return load_net(path)[0]
    except ValueError as exc:  # ours: it names the file
        raise ConfigError(f"{flag}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - torch's errors name no file (and unpickling's give bad advice)
        raise ConfigError(f"{flag}: {path} is not an inpainter checkpoint (.pt) or exported ONNX "
                          f"({type(exc).__name__})") from None


def train(spec: InpainterTraining, progress: Callable[[str], None] = print) -> Path:
    if spec.identity_model is not None and not Path(spec.identity_model).is_file():
        raise ConfigError(f"--identity-model: not found: {spec.identity_model}")
    if spec.exclude_like and spec.identity_model is None:
        raise ConfigError("--exclude-like: needs --identity-model, the embedder that judges who is alike")
    if spec.size % 32:
        raise ConfigError(f"--size: must be a multiple of 32, got {spec.size}")
    last = checked_run_folder(spec.out, spec.resume, spec.init, "inpainter", ("best.pt",))
    start = _read_net("--init", Path(spec.init)) if spec.init is not None else None  # refused before the banks are read
    if start is not None and (start.arch, start.base, start.size) != (spec.arch, spec.base, spec.size):
        raise ConfigError(f"--init: {spec.init} is a {start.arch} (base {start.base}, {start.size} px), not this run's")
    going_on = _read_net("--resume", last) if spec.resume else start
    if spec.resume and spec.upsample not in (None, going_on.upsample):
        raise ConfigError(f"--upsample: {last} is a run with {going_on.upsample} upsampling; a resumed run keeps it")
    if spec.upsample is None:  # what the run goes on from, else the default
        spec = replace(spec, upsample=going_on.upsample if going_on is not None else DEFAULT_UPSAMPLING)
    spec.out.mkdir(parents=True, exist_ok=True)
    if spec.device == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - spec.workers))
    run = _Run(spec, progress)
    if start is not None:
        run.net.load_state_dict(start.state_dict())
        progress(f"starting from the weights of {spec.init}")
    if spec.resume:
        run.restore(last)
    progress(f"training {spec.arch} (base {spec.base}, {sum(p.numel() for p in run.net.parameters()) / 1e6:.2f} M "
             f"parameters, {spec.upsample} upsampling) at {spec.size} px on {run.device}: "
             f"{len(run.train_set.faces)} training faces "
             f"({len(spec.banks)} bank{'s' if len(spec.banks) > 1 else ''}), "
             f"{len(run.train_set)} samples an epoch, "
             f"{len(run.val[0])} validation samples, GAN {'on' if run.discriminators is not None else 'off'}, "
             f"identity model {spec.identity_model or 'none'}")
    return run.run()


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value) if isinstance(value, Path) else value
