"""Evaluates inpainters side by side on held-out faces with synthetic occluders: pixels and identity.

    streamer eval inpainter --bank BANK --occluders DIR --embedder EMBEDDER.onnx --model A.onnx [--model B.pt ...]

The faces are the bank's test split (never trained on), each given occluders by the data engine
with the same CCTV faults as in training (the seed fixes them: every method sees the same images).
Every method fills the exact hole the occluders made, so the figures are the inpainter's alone.

Per method (rows): the occluded input itself, OpenCV Telea and Navier-Stokes, then each model.
- PSNR and SSIM on the hole (pixels under the occluder) and on the whole crop, against the
  occluded face's own original (same camera faults, no occluder).
- Identity: cosine similarity of the embedder's embedding of the clean gallery face (the bank's
  crop, no camera faults) to that of the method's output, and the verification AUC over all pairs:
  a face's output against its own gallery face (same) and against every other face's (different).
- The same identity figures per occluder class.
- The 8 px grid inside the hole (``grid_contrast``): how much more neighbouring pixels differ at one position
  modulo 8 than on average; the checker texture a nearest-upsampling decoder leaves. The clean faces' figure
  is printed above the table; the originals' (their JPEG blocks) is the first row's.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from streamer.datagen.face_bank import FaceBank
from streamer.datagen.occluders import OccluderLibrary
from streamer.train.inpainter_data import ComposedPairs

EVAL_EPOCH = 7918  # the evaluation's own random stream of occluders, apart from every training epoch


@dataclass
class EvalSet:
    originals: np.ndarray  # (n, S, S, 3) uint8: the occluded faces' originals (same camera faults)
    gallery: np.ndarray  # (n, S, S, 3) uint8: the clean bank faces, as enrolled
    occluded: np.ndarray
    holes: np.ndarray  # (n, S, S) bool
    classes: list[tuple[str, ...]]


@dataclass
class MethodResult:
    name: str
    psnr_hole: float
    ssim_hole: float
    psnr_whole: float
    ssim_whole: float
    identity: float
    auc: float
    ms_per_face: float
    grid: float
    detail: float = float("nan")
    identity_by_class: dict[str, float] = field(default_factory=dict)


def build_eval_set(bank: FaceBank, library: OccluderLibrary, size: int, seed: int, limit: int | None) -> EvalSet:
    faces = bank.split("test")[:limit] if limit else bank.split("test")
    pairs = ComposedPairs(faces, library, size, seed)
    items = defaultdict(list)
    for index in range(len(faces)):
        sample, hole = pairs.sample(index, EVAL_EPOCH)
        items["originals"].append(sample.original)
        items["gallery"].append(pairs.face(index)[0])
        items["occluded"].append(sample.occluded)
        items["holes"].append(hole)
        items["classes"].append(tuple(sorted({i.name for i in sample.instances})))
    return EvalSet(*(np.stack(items[k]) for k in ("originals", "gallery", "occluded", "holes")), items["classes"])


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    diff = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = diff[where].mean() if where is not None else diff.mean()
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def ssim(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    _, full = structural_similarity(a, b, channel_axis=2, data_range=255, full=True)
    full = full.mean(axis=2)
    return float(full[where].mean() if where is not None else full.mean())


def _inside(hole: np.ndarray, inset: int) -> np.ndarray:
    """The hole's pixels at least ``inset`` px in from its edge: what a fill makes up, its seam left out."""
    return cv2.erode(hole.astype(np.uint8), np.ones((2 * inset + 1, 2 * inset + 1), np.uint8)).astype(bool)


def grid_contrast(images: np.ndarray, holes: np.ndarray, period: int = 8, inset: int = 3) -> float:
    """Inside the holes (``inset`` px in from their edges, so the hole's own border does not count): the mean
    absolute difference of neighbouring pixels at the position modulo ``period`` where it is largest, over its
    mean at every position; averaged over rows and columns, pooled over all images. 1.0: no grid (a flat fill
    too); NaN where the holes have no inside at every position (none, or narrower than ``period`` + 2 ``inset``).
    The period is 8 whatever the network's size: three nearest doublings from any level make 8 px blocks."""
    sums, counts = np.zeros((2, period)), np.zeros((2, period))
    for image, hole in zip(images, holes):
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        inside = _inside(hole, inset)
        for axis in (0, 1):
            diff = np.abs(np.diff(grey, axis=axis))
            both = inside[1:] & inside[:-1] if axis == 0 else inside[:, 1:] & inside[:, :-1]
            phase = np.arange(diff.shape[axis]) % period
            phase = np.broadcast_to(phase[:, None] if axis == 0 else phase[None, :], diff.shape)
            sums[axis] += np.bincount(phase[both], diff[both], minlength=period)
            counts[axis] += np.bincount(phase[both], minlength=period)
    if counts.min() == 0:
        return float("nan")
    means = sums / counts
    level = means.mean(axis=1)
    return float(np.mean(np.where(level > 0, means.max(axis=1) / np.maximum(level, 1e-12), 1.0)))


def hole_detail(images: np.ndarray, originals: np.ndarray, holes: np.ndarray, inset: int = 3) -> float:
    """The blur in the holes: the mean gradient magnitude (grey, Sobel) of ``images`` inside the holes (``inset``
    px in from their edges), over the originals' on the same pixels, pooled over all images. 1.0: as much detail
    as the real face there; a blurry fill is below it. NaN where the holes have no inside."""
    totals = np.zeros(2)
    for image, original, hole in zip(images, originals, holes):
        inside = _inside(hole, inset)
        for k, picture in enumerate((image, original)):
            grey = cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY).astype(np.float32)
            magnitude = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
            totals[k] += magnitude[inside].sum()
    return float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")


def verification_auc(gallery: np.ndarray, probes: np.ndarray) -> float:
    """AUC of same (probe i vs gallery i) against different (probe i vs gallery j) cosine scores."""
    scores = probes @ gallery.T
    same = np.diag(scores)
    different = scores[~np.eye(len(scores), dtype=bool)]
    ranks = np.argsort(np.argsort(np.concatenate([same, different]))) + 1
    return float((ranks[: len(same)].sum() - len(same) * (len(same) + 1) / 2) / (len(same) * len(different)))


def evaluate(data: EvalSet, methods: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray] | None],
             embed: Callable[[np.ndarray], np.ndarray], progress: Callable[[str], None] = print) -> list[MethodResult]:
    """``methods``: name -> inpaint(crops, holes); None is the occluded input as it is."""
    gallery = embed(data.gallery)
    results = []
    for name, inpaint in methods.items():
        started = time.perf_counter()
        outputs = data.occluded if inpaint is None else inpaint(data.occluded, data.holes)
        ms = 0.0 if inpaint is None else 1000 * (time.perf_counter() - started) / len(outputs)
        embeddings = embed(outputs)
        similarity = (embeddings * gallery).sum(axis=1)
        by_class = defaultdict(list)
        for classes, value in zip(data.classes, similarity):
            for c in classes:
                by_class[c].append(value)
        pairs = list(zip(outputs, data.originals, data.holes))
        results.append(MethodResult(
            name=name,
            psnr_hole=float(np.mean([psnr(o, t, h) for o, t, h in pairs])),
            ssim_hole=float(np.mean([ssim(o, t, h) for o, t, h in pairs])),
            psnr_whole=float(np.mean([psnr(o, t) for o, t, _ in pairs])),
            ssim_whole=float(np.mean([ssim(o, t) for o, t, _ in pairs])),
            identity=float(similarity.mean()), auc=verification_auc(gallery, embeddings), ms_per_face=ms,
            grid=grid_contrast(outputs, data.holes), detail=hole_detail(outputs, data.originals, data.holes),
            identity_by_class={c: float(np.mean(v)) for c, v in sorted(by_class.items())},
        ))
        progress(f"{name}: done")
    return results


def table(results: list[MethodResult], data: EvalSet) -> str:
    lines = [f"{len(data.occluded)} held-out faces, {data.occluded.shape[1]} px, hole {data.holes.mean():.1%} of the "
             "crop on average; identity = cosine to the clean gallery face; 8 px grid in the hole: 1.00 none, the "
             f"clean faces {grid_contrast(data.gallery, data.holes):.3f}, the originals' JPEG blocks in the first row; "
             "detail in the hole: its gradients over the original face's there (1.00: as sharp; below: blurred)",
             "",
             "| method | PSNR hole | SSIM hole | PSNR whole | SSIM whole | identity | verification AUC | 8 px grid "
             "| detail | ms/face |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    def db(value: float) -> str:
        return "∞" if value > 100 else f"{value:.2f}"  # identical images

    for r in results:
        lines.append(f"| {r.name} | {db(r.psnr_hole)} | {r.ssim_hole:.3f} | {db(r.psnr_whole)} | {r.ssim_whole:.3f} | "
                     f"{r.identity:.3f} | {r.auc:.4f} | {r.grid:.3f} | {r.detail:.3f} | {r.ms_per_face:.1f} |")
    counts = defaultdict(int)
    for classes in data.classes:
        for c in classes:
            counts[c] += 1
    names = sorted(counts)
    lines += ["", "identity by occluder class (faces):", "",
              "| method | " + " | ".join(f"{c} ({counts[c]})" for c in names) + " |",
              "|---|" + "---|" * len(names)]
    for r in results:
        lines.append(f"| {r.name} | " + " | ".join(f"{r.identity_by_class.get(c, float('nan')):.3f}" for c in names)
                     + " |")
    return "\n".join(lines)


def opencv_method(flag: int, radius: int = 5) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def inpaint(crops: np.ndarray, holes: np.ndarray) -> np.ndarray:
        return np.stack([cv2.inpaint(c, h.astype(np.uint8), radius, flag) for c, h in zip(crops, holes)])

    return inpaint


def model_method(path: Path, device) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A trained inpainter as the stream runs it, minus the mask growth (the hole here is exact)."""
    from streamer.inpaint import inpaint_batched
    from streamer.inpaint.learned import LearnedInpaintConfig, LearnedInpainter

    inpainter = LearnedInpainter(LearnedInpaintConfig(model=path, dilate_px=0, max_batch=64), device)
    return lambda crops, holes: inpaint_batched(inpainter, crops, holes)
