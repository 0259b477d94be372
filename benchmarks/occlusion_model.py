"""The occluder YOLO-seg model: synthetic held-out accuracy, transfer to real masked faces, speed, ONNX parity.

    .venv/bin/python benchmarks/occlusion_model.py --model models/occlusion/occluders-yolo-seg.pt \
        --data /path/to/dataset [--limit 400]

val:      mask mAP50 / mAP50-95 per class on the dataset's val split (ultralytics val, imgsz 160).
(Real faces, per class, beside the AIZOO classifier: `streamer eval occlusion`, `make eval-occlusion`.)
speed:    ms per 112 px aligned crop and crops/s at batch 1, 8, 32 (and 128 on a GPU), on --device.
onnx:     exports to ONNX (dynamic batch) and compares its masks with the .pt's on val crops (IoU).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines import Device, select_device  # noqa: E402
from streamer.occlusion.yolo_seg import YoloSegConfig, YoloSegSegmenter  # noqa: E402
from streamer.records import AlignedCrop  # noqa: E402


def _val_images(data: Path) -> list[Path]:
    """64 occluded validation faces: the pairs' (a dataset built with pairs), else the YOLO images'."""
    return (sorted((data / "pairs" / "val").glob("*_occluded.png"))
            or sorted((data / "yolo" / "images" / "val").glob("*.jpg")))[:64]


def val(model: Path, data: Path) -> dict:
    from streamer.ultralytics_offline import import_ultralytics

    yolo = import_ultralytics().YOLO(str(model), task="segment")
    metrics = yolo.val(data=str(data / "yolo" / "data.yaml"), imgsz=160, batch=32, plots=False, verbose=False,
                       device="cpu")
    names = metrics.names
    rows = {names[int(c)]: (float(metrics.seg.ap50[i]), float(metrics.seg.ap[i]))
            for i, c in enumerate(metrics.seg.ap_class_index)}
    print("| class | mask mAP50 | mask mAP50-95 |\n|---|---|---|")
    for name, (ap50, ap) in rows.items():
        print(f"| {name} | {ap50:.3f} | {ap:.3f} |")
    print(f"| **all** | **{metrics.seg.map50:.3f}** | **{metrics.seg.map:.3f}** |")
    return {"per_class": rows, "map50": float(metrics.seg.map50), "map50_95": float(metrics.seg.map)}


def speed(model: Path, data: Path, preference: str = "cpu") -> dict:
    device = select_device(preference)
    segmenter = YoloSegSegmenter(YoloSegConfig(backend="yolo_seg", model=model), device)
    images = _val_images(data)
    crops = [AlignedCrop(cv2.resize(cv2.imread(str(p)), (112, 112), interpolation=cv2.INTER_AREA),
                         np.eye(2, 3, dtype=np.float32)) for p in images]
    segmenter.segment(crops[:8])  # warm up
    out = {}
    for batch in (1, 8, 32, 128) if device.is_cuda else (1, 8, 32):
        batch_crops = (crops * (batch // len(crops) + 1))[:batch]
        started, done = time.perf_counter(), 0
        while done < max(64, 4 * batch):
            segmenter.segment(batch_crops)
            done += batch
        seconds = time.perf_counter() - started
        out[batch] = {"ms_per_crop": 1000 * seconds / done, "crops_per_s": done / seconds}
        print(f"batch {batch:>2}: {1000 * seconds / done:.1f} ms per crop, {done / seconds:.0f} crops/s")
    return out


def onnx_parity(model: Path, data: Path) -> dict:
    from streamer.ultralytics_offline import import_ultralytics

    exported = Path(import_ultralytics().YOLO(str(model), task="segment").export(
        format="onnx", imgsz=160, dynamic=True, simplify=False))
    device = Device("cpu")
    torch_seg = YoloSegSegmenter(YoloSegConfig(backend="yolo_seg", model=model), device)
    onnx_seg = YoloSegSegmenter(YoloSegConfig(backend="yolo_seg", model=exported), device)
    images = _val_images(data)
    crops = [AlignedCrop(cv2.resize(cv2.imread(str(p)), (112, 112), interpolation=cv2.INTER_AREA),
                         np.eye(2, 3, dtype=np.float32)) for p in images]
    ious, same_classes = [], 0
    for a, b in zip(torch_seg.segment(crops), [onnx_seg.segment([c])[0] for c in crops]):
        union = (a.mask | b.mask).sum()
        ious.append(1.0 if union == 0 else (a.mask & b.mask).sum() / union)
        same_classes += a.classes == b.classes
    occluded = sum(bool(a.mask.any()) for a in torch_seg.segment(crops))
    raw = _raw_output_difference(model, exported)
    print(f"ONNX {exported.name}: mask IoU with the .pt mean {np.mean(ious):.4f}, min {np.min(ious):.4f} "
          f"({occluded} of {len(crops)} crops occluded); same classes on {same_classes}/{len(crops)} crops; "
          f"raw outputs on random input, batch 1/3/7: max |difference| {raw:.2e}")
    return {"file": str(exported), "mean_iou": float(np.mean(ious)), "min_iou": float(np.min(ious)),
            "same_classes": same_classes, "crops": len(crops), "max_raw_difference": raw}


def _raw_output_difference(model: Path, exported: Path) -> float:
    """The network's first output (boxes, class scores and mask coefficients of every anchor), torch vs
    ONNX Runtime, at several batch sizes of the dynamic axis."""
    import onnxruntime
    import torch

    from streamer.ultralytics_offline import import_ultralytics

    network = import_ultralytics().YOLO(str(model), task="segment").model.float().eval()
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in (1, 3, 7):
        x = torch.rand(batch, 3, 160, 160, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = network(x)[0]
        expected = [t.numpy() for t in (expected if isinstance(expected, (list, tuple)) else [expected])]
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        worst = max(worst, *(float(np.abs(e - g).max()) for e, g in zip(expected, got)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="the dataset folder (manifest.json, yolo/, pairs/)")
    parser.add_argument("--only", nargs="+", choices=["val", "speed", "onnx"], default=["val", "speed", "onnx"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="for speed (default cpu)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    steps = {"val": lambda: val(args.model, args.data),
             "speed": lambda: speed(args.model, args.data, args.device),
             "onnx": lambda: onnx_parity(args.model, args.data)}
    figures = {name: steps[name]() for name in args.only}
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))


if __name__ == "__main__":
    main()
