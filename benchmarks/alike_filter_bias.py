"""How much leaving out the pairs dlib finds alike shortens MobileFaceNet's impostor tail on TRUE strangers.

    .venv/bin/python benchmarks/alike_filter_bias.py [--faces ../shared/data/faces_train/glint24_112]
        [--dlib-alike 0.95 0.916]

``benchmarks/impostor_tail.py`` measures the tail on UTKFace, which has no identity labels: a pair that
dlib (the other embedder) scores from ``--dlib-alike`` is left out as maybe the same person. A stricter
filter shortens the tail, but is that because it removes repeats of one person, or because it also removes
real look-alikes both embedders agree on? On glint24 every pair of two labelled people is a true stranger
pair, so whatever a filter takes off the tail there is the optimism it would add. Clean ArcFace-aligned
photos, every pair of different people; z as in impostor_tail.py (the score a rate of pairs passes, in
spreads above the impostor mean). About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from impostor_tail import tail_z  # benchmarks/: run as a script, this folder is on the path

from engines import Device
from streamer.config import parse_config
from streamer.embed import build_embedder
from streamer.embed.arcface import ArcFaceConfig
from streamer.eval.identity import embed_all
from streamer.identify.gallery import IMAGE_SUFFIXES

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
RATES = (1e-2, 1e-3, 1e-4, 1e-5)  # 3.4 million pairs: each read off, none carried on


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", default=str(SHARED / "data" / "faces_train" / "glint24_112"),
                        help="one folder per person of 112 px ArcFace-aligned photos")
    parser.add_argument("--dlib-alike", type=float, nargs="+", default=[0.95, 0.916])
    args = parser.parse_args()
    paths = sorted(p for p in Path(args.faces).glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)
    people = np.array([p.parent.name for p in paths])
    crops = np.stack([cv2.imread(str(p)) for p in paths])  # BGR, as the embedders take them
    device = Device("cpu")
    model = SHARED / "models" / "mobilefacenet_128d.onnx"
    mobilefacenet = build_embedder(ArcFaceConfig(backend="arcface", model=model), device)  # mirrored: the default
    # single view: the cut-offs below (0.916, 0.95) are single view's
    dlib = build_embedder(parse_config({"embedder": {"backend": "dlib", "mirror": False}}).embedder, device)
    ours, theirs = embed_all(mobilefacenet, crops), embed_all(dlib, crops)
    first, second = np.triu_indices(len(paths), 1)
    strangers = people[first] != people[second]
    first, second = first[strangers], second[strangers]
    scores = np.einsum("ij,ij->i", ours[first], ours[second])
    alike = np.einsum("ij,ij->i", theirs[first], theirs[second])
    mean, std = scores.mean(), scores.std()
    print(f"{len(paths)} photos of {len(set(people))} people; {len(scores):,} pairs of different people; "
          f"MobileFaceNet impostor mean {mean:.4f}, spread {std:.4f}\n")
    print("| pairs left out | " + " | ".join(f"z at {p:g}" for p in RATES) + " |\n|---|" + "---|" * len(RATES))
    for cut in [None, *args.dlib_alike]:
        kept = scores if cut is None else scores[alike < cut]
        label = "none" if cut is None else f"dlib >= {cut:g}: {len(scores) - len(kept):,}"
        print(f"| {label} | " + " | ".join(f"{z:.3f}" for z in tail_z(kept, mean, std, RATES)) + " |")


if __name__ == "__main__":
    main()
