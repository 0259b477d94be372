"""The inpainting stage's speed on each runtime, against OpenCV Telea in the same run.

    .venv/bin/python benchmarks/inpainter_backends.py [--onnx MODEL.onnx] [--checkpoint MODEL.pt]
        [--device cpu|cuda] [--batches 1 8 32] [--json out.json]

Each row is the stage's own call (``LearnedInpainter.inpaint``: resize 112 -> network size, run,
resize back, paste inside the grown mask) on 112 px crops whose lower 40% is hidden, as a face mask
hides it. Backends that cannot run here (TensorRT without ``tensorrt``, CUDA rows on a CPU) are
listed as skipped with the reason. Ratios are faces/s over OpenCV Telea's faces/s in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines import select_device  # noqa: E402
from streamer.inpaint.learned import DEFAULT_MODEL, LearnedInpaintConfig, LearnedInpainter  # noqa: E402
from streamer.inpaint.opencv import OpenCVInpaintConfig, OpenCVInpainter  # noqa: E402

CROP = 112


def faces(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (n, CROP, CROP, 3), np.uint8)
    masks = np.zeros((n, CROP, CROP), bool)
    masks[:, int(CROP * 0.6):, 16:CROP - 16] = True
    return crops, masks


def time_call(inpainter, batch: int, seconds: float) -> float:
    """Faces per second through ``inpainter.inpaint`` at this batch size (after a warm-up)."""
    crops, masks = faces(batch)
    inpainter.inpaint(crops, masks)
    inpainter.inpaint(crops, masks)
    started, done = time.perf_counter(), 0
    while time.perf_counter() - started < seconds or done < 3 * batch:
        inpainter.inpaint(crops, masks)
        done += batch
    return done / (time.perf_counter() - started)


def backends(args, device) -> dict[str, object]:
    rows: dict[str, object] = {"OpenCV Telea (baseline, CPU)": lambda: OpenCVInpainter(OpenCVInpaintConfig(), device)}
    onnx = args.onnx or DEFAULT_MODEL
    rows["ONNX Runtime, FP32"] = lambda: LearnedInpainter(
        LearnedInpaintConfig(model=onnx, runtime="onnxruntime", max_batch=max(args.batches)), device)
    if device.is_cuda:
        rows["TensorRT, FP16"] = lambda: LearnedInpainter(
            LearnedInpaintConfig(model=onnx, runtime="tensorrt", max_batch=max(args.batches)), device)
    if args.checkpoint:
        for label, fp16, graphs in (("torch, FP32", False, False), ("torch, FP16", True, False),
                                    ("torch, FP16 + CUDA graphs", True, True)):
            if (fp16 or graphs) and not device.is_cuda:
                continue
            rows[label] = (lambda fp16=fp16, graphs=graphs: LearnedInpainter(LearnedInpaintConfig(
                model=args.checkpoint, runtime="torch", fp16=fp16, cuda_graphs=graphs,
                max_batch=max(args.batches)), device))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, help=f"default: the shipped {DEFAULT_MODEL.name}")
    parser.add_argument("--checkpoint", type=Path, help="a .pt of 'streamer train inpainter', for the torch rows")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed per cell")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    device = select_device(args.device)
    results: dict[str, dict] = {}
    for label, build in backends(args, device).items():
        try:
            inpainter = build()
        except Exception as exc:  # a runtime that is not here: say why, measure the rest
            why = f"{type(exc).__name__}: {exc}".splitlines()
            results[label] = {"skipped": " ".join(line.strip() for line in why[:3])}
            print(f"{label}: skipped ({results[label]['skipped']})", flush=True)
            continue
        try:
            results[label] = {str(b): time_call(inpainter, b, args.seconds) for b in args.batches}
        except Exception as exc:
            results[label] = {"skipped": f"failed while running: {type(exc).__name__}: {exc}".splitlines()[0]}
            print(f"{label}: failed ({type(exc).__name__}: {exc})", flush=True)
            continue
        print(f"{label}: " + ", ".join(f"batch {b} {results[label][str(b)]:.0f} faces/s" for b in args.batches),
              flush=True)
    baseline = results["OpenCV Telea (baseline, CPU)"]
    print(f"\nOn {device} ({device.name}); faces/s (ms per face), ratio to OpenCV Telea at the same batch\n")
    print("| backend | " + " | ".join(f"batch {b}" for b in args.batches) + " |")
    print("|---|" + "---|" * len(args.batches))
    for label, row in results.items():
        if "skipped" in row:
            print(f"| {label} | skipped: {row['skipped'][:80]} |")
            continue
        cells = [f"{row[str(b)]:.0f} ({1000 / row[str(b)]:.2f} ms, {row[str(b)] / baseline[str(b)]:.2f}×)"
                 for b in args.batches]
        print(f"| {label} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps({"device": str(device), "faces_per_s": results}, indent=1))


if __name__ == "__main__":
    main()
