"""Fits the mean LBP-histogram face descriptor shipped as streamer/embed/lbp_mean_descriptor.npy.

Recipe: every photo in ../shared/data/masked_faces/without_mask (real unmasked faces), SCRFD-500MF
landmarks (../shared/models), ArcFace 112-px alignment, then the mean raw descriptor.

    .venv/bin/python benchmarks/fit_lbp_mean.py ../shared
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from engines import Device
from streamer.align import align_face
from streamer.detect import detect_in_photo
from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
from streamer.embed.lbp_histogram import MEAN_DESCRIPTOR, fit_mean_descriptor


def main(shared: Path) -> None:
    detector = ScrfdDetector(
        ScrfdConfig(backend="scrfd", model=shared / "models" / "scrfd_500m_bnkps.onnx", input_size=320), Device("cpu")
    )
    crops = []
    paths = sorted((shared / "data" / "masked_faces" / "without_mask").iterdir())
    for i, path in enumerate(paths):
        image = cv2.imread(str(path))
        if image is None:
            continue
        found, image = detect_in_photo(detector, image)
        if len(found):
            crops.append(align_face(image, found.landmarks[int(found.scores.argmax())], 112).image)
        if i % 200 == 0:
            print(f"\r{i}/{len(paths)} photos, {len(crops)} faces", end="", file=sys.stderr)
    mean = fit_mean_descriptor(np.stack(crops))
    np.save(MEAN_DESCRIPTOR, mean.astype(np.float32))
    print(f"\nwrote {MEAN_DESCRIPTOR} from {len(crops)} faces", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared"))
