"""Trains the occluder YOLO-seg model with ultralytics, offline, from a model yaml (no pretrained weights).

    streamer train occlusion --data OUT/yolo/data.yaml --out runs/occlusion [--epochs 12] [--resume]

Seeded and deterministic where ultralytics allows; ``--resume`` continues an interrupted run from
its ``last.pt``. Progress: ultralytics' bar per epoch, and one line per epoch with the validation
mask mAP. The best weights are copied to ``OUT/occluders-yolo-seg.pt``.
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
    model: str = "yolo11n-seg.yaml"  # a yaml from ultralytics' own cfg (built from scratch), or a .pt to fine-tune
    epochs: int = 12
    imgsz: int = 160
    batch: int = 32
    device: str = "cpu"
    seed: int = 0
    workers: int = 2
    minutes: float | None = None  # a time budget: ultralytics fits the epochs and the LR schedule into it
    resume: bool = False


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
        model = ultralytics.YOLO(spec.model, task="segment")
        _report_epochs(model)
        model.train(
            data=str(spec.data.resolve()), epochs=spec.epochs, imgsz=spec.imgsz, batch=spec.batch,
            device=spec.device, seed=spec.seed, workers=spec.workers,
            # On a GPU deterministic kernels cost speed, and mixed precision is not bit-exact anyway.
            deterministic=spec.device == "cpu",
            time=spec.minutes / 60 if spec.minutes else None,
            project=str(spec.out.resolve().parent), name=spec.out.name, exist_ok=True,
            pretrained=False, amp=spec.device != "cpu", plots=False,  # plots would fetch a font from the web
            fliplr=0.5, mosaic=0.0,  # crops are aligned faces: a 2x2 mosaic of faces is not what the stage sees
            close_mosaic=0, verbose=True,
        )
    best = spec.out / "weights" / "best.pt"
    shipped = spec.out / "occluders-yolo-seg.pt"
    shutil.copyfile(best if best.is_file() else last, shipped)
    return shipped


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
