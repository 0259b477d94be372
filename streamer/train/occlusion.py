"""Trains the occluder YOLO-seg model with ultralytics, offline: from a model yaml, or refining a .pt or .onnx.

    streamer train occlusion --data OUT/yolo/data.yaml --out runs/occlusion [--epochs 12] [--resume]

Seeded and deterministic where ultralytics allows; ``--resume`` continues an interrupted run from
its ``last.pt``. Progress: ultralytics' bar per epoch, and one line per epoch with the validation
mask mAP. The best weights are copied to ``OUT/occluders-yolo-seg.pt`` and exported beside it as ``.onnx``.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from streamer.errors import ConfigError
from streamer.ultralytics_offline import import_ultralytics


@dataclass
class OcclusionTraining:
    data: Path
    out: Path
    # A yaml from ultralytics' own cfg (built from scratch), or a .pt or an ultralytics .onnx export to fine-tune.
    model: str = "yolo11n-seg.yaml"
    architecture: str = "yolo11n-seg.yaml"  # what an .onnx --model was exported from
    epochs: int = 12
    imgsz: int = 160
    batch: int = 32
    device: str = "cpu"
    seed: int = 0
    workers: int = 2
    minutes: float | None = None  # a time budget: ultralytics fits the epochs and the LR schedule into it
    resume: bool = False
    lr: float | None = None  # initial learning rate (None: ultralytics' optimizer "auto" picks it)


def train(spec: OcclusionTraining) -> Path:
    if not spec.data.is_file():
        raise ConfigError(f"--data: not found: {spec.data} (build it with 'streamer data occlusion')")
    os.environ["YOLO_VERBOSE"] = "true"  # its per-batch progress bars (the stream stages keep it quiet)
    ultralytics = import_ultralytics()
    _no_amp_download()
    last = spec.out / "weights" / "last.pt"
    if spec.resume:
        if not last.is_file():
            raise ConfigError(f"--resume: no checkpoint at {last}")
        model = ultralytics.YOLO(str(last), task="segment")
        _report_epochs(model)
        model.train(resume=True)
    else:
        start = spec.model
        if start.lower().endswith(".onnx"):
            start = str(_unfused_checkpoint(spec))
        model = ultralytics.YOLO(start, task="segment")
        _report_epochs(model)
        model.train(
            data=str(spec.data.resolve()), epochs=spec.epochs, imgsz=spec.imgsz, batch=spec.batch,
            device=spec.device, seed=spec.seed, workers=spec.workers,
            # On a GPU deterministic kernels cost speed, and mixed precision is not bit-exact anyway.
            deterministic=spec.device == "cpu",
            time=spec.minutes / 60 if spec.minutes else None,
            project=str(spec.out.resolve().parent), name=spec.out.name, exist_ok=True,
            # A .pt or .onnx start is fine-tuned (pretrained=False would drop its weights); a yaml starts afresh.
            pretrained=not spec.model.lower().endswith((".yaml", ".yml")),
            amp=spec.device != "cpu", plots=False,  # plots would fetch a font from the web
            fliplr=0.5, mosaic=0.0,  # crops are aligned faces: a 2x2 mosaic of faces is not what the stage sees
            close_mosaic=0, verbose=True,
            **({"lr0": spec.lr, "optimizer": "AdamW", "warmup_epochs": 0.5} if spec.lr is not None else {}),
        )
    best = spec.out / "weights" / "best.pt"
    shipped = spec.out / "occluders-yolo-seg.pt"
    shutil.copyfile(best if best.is_file() else last, shipped)
    return shipped


def export_onnx(checkpoint: Path, imgsz: int) -> Path:
    """The checkpoint as the stage runs it: ONNX, a dynamic batch axis, not simplified (onnxsim is not needed),
    beside the checkpoint with its suffix changed."""
    exported = import_ultralytics().YOLO(str(checkpoint), task="segment").export(
        format="onnx", imgsz=imgsz, dynamic=True, simplify=False)
    return Path(exported)


def _unfused_checkpoint(spec: OcclusionTraining) -> Path:
    """A trainable checkpoint of the .onnx --model (occlusion_init), its batch norms calibrated on up to 256
    of the training images."""
    import cv2
    import yaml

    from streamer.train.occlusion_init import checkpoint_from_onnx

    onnx_path = Path(spec.model)
    if not onnx_path.is_file():
        raise ConfigError(f"--model: not found: {onnx_path}")
    data = yaml.safe_load(spec.data.read_text())
    if not isinstance(data, dict) or "path" not in data or "train" not in data:
        raise ConfigError(f"--data: {spec.data} has no 'path' and 'train' (expected 'streamer data occlusion' output)")
    images_dir = Path(data["path"]) / data["train"]
    paths = sorted(images_dir.glob("*.jpg"))[:: max(1, len(list(images_dir.glob("*.jpg"))) // 256)][:256]
    images = [cv2.resize(cv2.imread(str(p)), (spec.imgsz, spec.imgsz)) for p in paths]
    if not images:
        raise ConfigError(f"--data: no training images in {images_dir}")
    spec.out.mkdir(parents=True, exist_ok=True)
    out = checkpoint_from_onnx(onnx_path, spec.architecture, images, spec.out / "init-from-onnx.pt")
    print(f"fine-tuning {onnx_path.name}: unfused into {out} (batch norms calibrated on {len(images)} images)")
    return out


def _no_amp_download() -> None:
    """ultralytics checks mixed precision on a GPU by downloading a reference model and comparing its
    outputs; offline that download is the only thing that can fail, so the check is taken as passed
    (amp=False on the command line still turns mixed precision off)."""
    from ultralytics.engine import trainer

    trainer.check_amp = lambda model: True


def _report_epochs(model) -> None:
    """One line per epoch, whatever ultralytics' own verbosity: epoch, mask mAP, time so far."""
    started = time.monotonic()

    def on_epoch_end(trainer) -> None:
        if trainer.epoch >= trainer.epochs:  # the final re-validation of best.pt, not an epoch
            return
        metrics = trainer.metrics or {}
        print(f"epoch {trainer.epoch + 1}/{trainer.epochs}: mask mAP50 {metrics.get('metrics/mAP50(M)', 0):.3f}, "
              f"mAP50-95 {metrics.get('metrics/mAP50-95(M)', 0):.3f}, {time.monotonic() - started:.0f} s",
              flush=True)

    model.add_callback("on_fit_epoch_end", on_epoch_end)
