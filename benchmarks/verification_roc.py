"""Face verification with occluders: clean vs occluded vs reconstructed, as ROC figures.

    .venv/bin/python benchmarks/verification_roc.py [--bank out/faces] [--occluders ../shared/data/occluders]
        [--embedder ../shared/models/mobilefacenet_128d.onnx] [--inpainter streamer/inpaint/weights/...onnx]

Faces: the face bank (``make face-bank``) of ../shared's named photos: the masked-faces set's
unmasked photos (file names carry the person: 99 people) and face_recognition's named people.
Probes are the bank's test split (never seen by the inpainter's training), each given occluders
by the data engine (fixed seed); references are every *other* photo of the bank, clean.
Genuine pairs: probe and reference of the same person (different photos); impostors: different
people. Per condition: ROC AUC, TAR at FAR 1% and 0.1%, and TAR / FAR at the ArcFace threshold the
pipeline uses (0.35). "best of both" is what a track's decision does: the higher of the visible
and the reconstructed face's scores.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from engines import select_device
from streamer.datagen.face_bank import FaceBank
from streamer.datagen.occluders import OccluderLibrary
from streamer.embed.arcface import ArcFaceConfig, ArcFaceEmbedder
from streamer.eval.inpainter import EVAL_EPOCH, model_method, opencv_method
from streamer.train.inpainter_data import ComposedPairs

ROOT = Path(__file__).resolve().parents[1]
THRESHOLD = 0.35
ALIASES = {"johnsnow": "kit_harington", "alex-lacamoire": "alex_lacamoire", "alex_lacamoire1": "alex_lacamoire",
           "lin-manuel-miranda": "lin_manuel_miranda"}


def person_of(key: str) -> str | None:
    """Who a bank photo shows, from its file name; None when it does not say (or shows several)."""
    name = Path(key).name
    match = re.match(r"^\d+_\d+_([a-z]+)_\d+\.", name)
    if match:
        return match.group(1)
    if "/knn_examples/train/" in key:
        return key.split("/")[-2]
    stem = Path(name).stem
    for prefix, person in (("obama", "obama"), ("biden", "biden"), ("johnsnow", "kit_harington")):
        if stem.startswith(prefix) and "_and_" not in stem:
            return person
    return ALIASES.get(stem)


def roc(genuine: np.ndarray, impostor: np.ndarray) -> dict:
    scores = np.concatenate([genuine, impostor])
    ranks = np.argsort(np.argsort(scores)) + 1
    auc = (ranks[: len(genuine)].sum() - len(genuine) * (len(genuine) + 1) / 2) / (len(genuine) * len(impostor))
    out = {"auc": float(auc)}
    ordered = np.sort(impostor)[::-1]
    for far in (1e-2, 1e-3):
        threshold = ordered[max(int(far * len(impostor)) - 1, 0)]
        out[f"tar@far{far:g}"] = float((genuine > threshold).mean())
    out["tar@0.35"] = float((genuine >= THRESHOLD).mean())
    out["far@0.35"] = float((impostor >= THRESHOLD).mean())
    return out


def main() -> None:
    shared = ROOT.parent / "shared"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bank", default=str(ROOT / "out" / "faces"))
    parser.add_argument("--occluders", default=str(shared / "data" / "occluders"))
    parser.add_argument("--embedder", default=str(shared / "models" / "mobilefacenet_128d.onnx"))
    parser.add_argument("--inpainter", default=str(ROOT / "streamer/inpaint/weights/inpainter-pconv-unet-128.onnx"))
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    device = select_device("cpu")
    bank = FaceBank(Path(args.bank))
    labelled = [f for f in bank.faces if person_of(f.key)]
    people = defaultdict(list)
    for face in labelled:
        people[person_of(face.key)].append(face)
    probes = [f for f in labelled if f.split == "test" and len(people[person_of(f.key)]) > 1]
    embedder = ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=Path(args.embedder)), device)
    library = OccluderLibrary(Path(args.occluders))

    reference_pairs = ComposedPairs(labelled, library, 112, seed=0)
    references = embedder.embed(np.stack([reference_pairs.face(i)[0] for i in range(len(labelled))]))
    probe_pairs = ComposedPairs(probes, library, 112, seed=0)
    samples = [probe_pairs.sample(i, EVAL_EPOCH) for i in range(len(probes))]
    clean = np.stack([s.original for s, _ in samples])
    occluded = np.stack([s.occluded for s, _ in samples])
    holes = np.stack([h for _, h in samples])
    classes = [tuple(sorted({i.name for i in s.instances})) for s, _ in samples]
    views = {
        "clean (no occluder)": clean,
        "occluded": occluded,
        "OpenCV Telea": opencv_method(cv2.INPAINT_TELEA)(occluded, holes),
        Path(args.inpainter).name: model_method(Path(args.inpainter), device)(occluded, holes),
    }
    scores = {name: embedder.embed(images) @ references.T for name, images in views.items()}
    scores["best of occluded / reconstructed"] = np.maximum(scores["occluded"], scores[Path(args.inpainter).name])

    probe_person = np.array([person_of(f.key) for f in probes])
    reference_person = np.array([person_of(f.key) for f in labelled])
    same = probe_person[:, None] == reference_person[None, :]
    other_photo = np.array([[p.key != r.key for r in labelled] for p in probes])
    genuine, impostor = same & other_photo, ~same
    print(f"{len(probes)} probes of {len(set(probe_person))} people against {len(labelled)} references of "
          f"{len(people)} people: {int(genuine.sum())} genuine and {int(impostor.sum())} impostor pairs\n")
    print("| condition | AUC | TAR @ FAR 1% | TAR @ FAR 0.1% | TAR @ 0.35 | FAR @ 0.35 |")
    print("|---|---|---|---|---|---|")
    results = {}
    for name, matrix in scores.items():
        r = results[name] = roc(matrix[genuine], matrix[impostor])
        print(f"| {name} | {r['auc']:.4f} | {r['tar@far0.01']:.3f} | {r['tar@far0.001']:.3f} | "
              f"{r['tar@0.35']:.3f} | {r['far@0.35']:.4f} |")
    print("\nper occluder class (AUC, TAR @ FAR 1%):\n")
    print("| class | probes | " + " | ".join(n for n in scores if n != "clean (no occluder)") + " |")
    print("|---|---|" + "---|" * (len(scores) - 1))
    for cls in sorted({c for cs in classes for c in cs}):
        rows = np.array([cls in cs for cs in classes])
        cells = []
        for name, matrix in scores.items():
            if name == "clean (no occluder)":
                continue
            r = roc(matrix[rows][genuine[rows]], matrix[rows][impostor[rows]])
            results.setdefault("by_class", {}).setdefault(cls, {})[name] = r
            cells.append(f"{r['auc']:.3f}, {r['tar@far0.01']:.2f}")
        print(f"| {cls} | {int(rows.sum())} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
