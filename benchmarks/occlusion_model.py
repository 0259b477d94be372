"""The occluder YOLO-seg model: synthetic held-out accuracy, transfer to real masked faces, speed, ONNX parity.

    .venv/bin/python benchmarks/occlusion_model.py --model models/occlusion/occluders-yolo-seg.pt \
        --data /path/to/dataset [--limit 400]

val:      mask mAP50 / mAP50-95 per class on the dataset's val split (ultralytics val, imgsz 160).
real:     ../shared/data/masked_faces: on with_mask, the share of faces where a face_mask is found;
          on without_mask, the share with any occluder found (false occlusions) - only photos of the
          face bank's held-out test split, never trained or validated on. Beside it the
          independent AIZOO mask classifier (../shared/models/aizoo_facemask) on the same photos.
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
from streamer.datagen.face_bank import split_of  # noqa: E402
from streamer.detect import align_most_confident  # noqa: E402
from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector  # noqa: E402
from streamer.occlusion.yolo_seg import YoloSegConfig, YoloSegSegmenter  # noqa: E402
from streamer.records import AlignedCrop  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MASKED = SHARED / "data" / "masked_faces"


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


class Aizoo:
    """The AIZOO face-mask SSD (OpenCV dnn, Caffe). Only its class scores are read: the verdict is the
    class of its most confident anchor, so its box decoding is not needed here."""

    def __init__(self, folder: Path):
        self.net = cv2.dnn.readNetFromCaffe(str(folder / "face_mask_detection.prototxt"),
                                            str(folder / "face_mask_detection.caffemodel"))

    def wears_mask(self, image: np.ndarray) -> bool | None:
        """True/False for the most confident face, None if it finds no face."""
        blob = cv2.dnn.blobFromImage(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), 1 / 255.0, (260, 260))
        self.net.setInput(blob)
        scores = self.net.forward("cls_branch_concat")[0]
        best = int(scores.max(axis=1).argmax())
        if scores[best].max() < 0.5:
            return None
        return int(scores[best].argmax()) == 0  # class 0: Mask


def real(model: Path, data: Path, limit: int) -> dict:
    device = Device("cpu")
    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=SHARED / "models" / "scrfd_2.5g_bnkps.onnx",
                                         input_size=320), device)
    segmenter = YoloSegSegmenter(YoloSegConfig(backend="yolo_seg", model=model), device)
    aizoo = Aizoo(SHARED / "models" / "aizoo_facemask")
    results = {}
    for kind in ("with_mask", "without_mask"):
        folder = MASKED / kind
        photos = [p for p in sorted(folder.iterdir()) if kind == "with_mask" or split_of(p, folder) == "test"]
        photos = photos[:limit]
        crops, aizoo_says = [], []
        for path in photos:
            image = cv2.imread(str(path))
            if image is None:
                continue
            aligned = align_most_confident(detector, image, 112)
            if aligned is None:
                continue
            crops.append(aligned[0])
            aizoo_says.append(aizoo.wears_mask(image))
        occlusions = []
        for start in range(0, len(crops), 32):
            occlusions += segmenter.segment(crops[start:start + 32])
        face_mask = np.mean(["face_mask" in o.classes for o in occlusions])
        anything = np.mean([o.occluded for o in occlusions])
        fractions = [o.fraction for o in occlusions if "face_mask" in o.classes]
        decided = [a for a in aizoo_says if a is not None]
        results[kind] = {"faces": len(crops), "face_mask_found": float(face_mask), "any_occluder": float(anything),
                         "median_face_mask_fraction": float(np.median(fractions)) if fractions else None,
                         "aizoo_mask": float(np.mean(decided)) if decided else None,
                         "aizoo_no_face": aizoo_says.count(None)}
        print(f"{kind}: {len(crops)} faces; YOLO-seg face_mask {face_mask:.1%}, any occluder {anything:.1%}; "
              f"AIZOO mask {results[kind]['aizoo_mask']:.1%} of {len(decided)} it found a face in")
    return results


def speed(model: Path, data: Path, preference: str = "cpu") -> dict:
    device = select_device(preference)
    segmenter = YoloSegSegmenter(YoloSegConfig(backend="yolo_seg", model=model), device)
    images = sorted((data / "pairs" / "val").glob("*_occluded.png"))[:64]
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
    images = sorted((data / "pairs" / "val").glob("*_occluded.png"))[:64]
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
    parser.add_argument("--limit", type=int, default=2000, help="real photos per set, at most")
    parser.add_argument("--only", nargs="+", choices=["val", "real", "speed", "onnx"],
                        default=["val", "real", "speed", "onnx"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="for speed (default cpu)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    steps = {"val": lambda: val(args.model, args.data), "real": lambda: real(args.model, args.data, args.limit),
             "speed": lambda: speed(args.model, args.data, args.device),
             "onnx": lambda: onnx_parity(args.model, args.data)}
    figures = {name: steps[name]() for name in args.only}
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))


if __name__ == "__main__":
    main()
