"""How often the occlusion stage fires on real masked and unmasked faces.

    .venv/bin/python benchmarks/occlusion_real.py [--limit 300] [--config CONFIG]

Faces from ../shared/data/masked_faces/{with_mask,without_mask} (tight face photos, padded for
context), landmarks from SCRFD-500MF (../shared/models), then the configured occlusion stage
(default: the offline colour-anomaly segmenter). Prints the share of faces found occluded in each set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from engines import Device
from streamer.align import align_face
from streamer.config import load_config, parse_config
from streamer.detect import detect_in_photo
from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
from streamer.occlusion import build_segmenter

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def aligned_faces(folder: Path, detector, limit: int):
    crops = []
    for path in sorted(folder.iterdir())[:limit]:
        image = cv2.imread(str(path))
        if image is None:
            continue
        found, image = detect_in_photo(detector, image)
        if len(found):
            crops.append(align_face(image, found.landmarks[int(found.scores.argmax())], 112))
    return crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=300, help="photos per set")
    parser.add_argument("--config", help="config whose occlusion stage to measure")
    args = parser.parse_args()
    config = load_config(args.config) if args.config else parse_config({})
    device = Device("cpu")
    detector = ScrfdDetector(
        ScrfdConfig(backend="scrfd", model=SHARED / "models" / "scrfd_500m_bnkps.onnx", input_size=320), device
    )
    segmenter = build_segmenter(config.occlusion, device)
    print(f"occlusion: {segmenter.description}")
    for kind in ("with_mask", "without_mask"):
        crops = aligned_faces(SHARED / "data" / "masked_faces" / kind, detector, args.limit)
        occlusions = segmenter.segment(crops)
        found = sum(o.occluded for o in occlusions)
        lower = sum("lower_face" in o.classes for o in occlusions)
        print(f"{kind:<13} {len(crops)} faces: occluded {found / len(crops):.1%}, lower face {lower / len(crops):.1%}")


if __name__ == "__main__":
    main()
