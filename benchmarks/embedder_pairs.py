"""Genuine and impostor cosine similarities of the configured embedder on real faces.

    .venv/bin/python benchmarks/embedder_pairs.py [--config CONFIG]

Faces: ../shared/data/faces/identities/knn_examples/train (named people, several photos each) and
300 photos of ../shared/data/masked_faces/without_mask (treated as distinct people), aligned with
SCRFD-500MF. Prints same-person scores, impostor quantiles and the false-accept rate at thresholds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from engines import Device
from streamer.align import align_face
from streamer.config import load_config, parse_config
from streamer.detect import detect_in_photo
from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
from streamer.embed import build_embedder

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="config whose embedder to measure (default: the offline LBP)")
    args = parser.parse_args()
    config = load_config(args.config) if args.config else parse_config({})
    device = Device("cpu")
    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=SHARED / "models" / "scrfd_500m_bnkps.onnx"), device)
    embedder = build_embedder(config.embedder, device)
    people = sorted((SHARED / "data" / "faces" / "identities" / "knn_examples" / "train").glob("*/*"))
    strangers = sorted((SHARED / "data" / "masked_faces" / "without_mask").iterdir())[1000:1300]
    crops, ids = [], []
    for path, identity in [(p, p.parent.name) for p in people] + [(p, str(p)) for p in strangers]:
        found, image = detect_in_photo(detector, cv2.imread(str(path)))
        if len(found):
            crops.append(align_face(image, found.landmarks[int(found.scores.argmax())], 112).image)
            ids.append(identity)
    vectors = embedder.embed(np.stack(crops))
    scores = vectors @ vectors.T
    ids = np.array(ids)
    same = ids[:, None] == ids[None, :]
    upper = np.triu(np.ones_like(same), 1).astype(bool)
    genuine, impostor = scores[same & upper], scores[~same & upper]
    print(f"embedder: {embedder.description}; default threshold {embedder.default_threshold}")
    print(f"same person, different photos ({len(genuine)} pairs): {np.round(np.sort(genuine), 3).tolist()}")
    print(f"impostor pairs: {len(impostor)}, mean {impostor.mean():.3f}, 99% {np.quantile(impostor, 0.99):.3f}")
    for threshold in sorted({0.3, 0.35, 0.4, 0.45, 0.5, embedder.default_threshold}):
        print(f"  threshold {threshold:.3f}: false accepts {(impostor >= threshold).mean():.3%}, "
              f"true accepts {(genuine >= threshold).mean():.0%}")


if __name__ == "__main__":
    main()
