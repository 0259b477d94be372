"""Face detection recall on the demo clip (known ground truth) and false faces on a real crowd.

    .venv/bin/python benchmarks/detector_recall.py [--config CONFIG] [--every 3]

Recall: the share of frames in which each demo face has a detection whose landmark centre lies in
its ground-truth box. False faces: detections per frame on ../shared's overhead pedestrian video,
where no face is visible. Both for the configured detector (default: the offline Haar cascade).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from streamer.config import load_config, parse_config
from streamer.demo import build_demo
from streamer.detect import build_detector

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video"
CROWD = VIDEOS / "overhead_pedestrians_lamminhthien_vtest.avi"


def frames_of(path: Path, limit: int, every: int) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for i, f in zip(range(limit), container.decode(video=0)) if i % every == 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="config whose detector to measure")
    parser.add_argument("--every", type=int, default=3, help="use every Nth frame")
    args = parser.parse_args()
    config = load_config(args.config) if args.config else parse_config({})
    detector = build_detector(config.detector, config.engine.select_device())
    print(f"detector: {detector.description}")
    with tempfile.TemporaryDirectory() as tmp:
        truth = build_demo(Path(tmp), frames=120)
        frames = frames_of(Path(tmp) / "demo.mp4", 120, args.every)
    hits = {face["identity"]: 0 for face in truth["faces"]}
    started = time.perf_counter()
    for k, image in enumerate(frames):
        index = k * args.every
        centres = detector.detect(image).landmarks.mean(axis=1)
        for face in truth["faces"]:
            x1, y1, x2, y2 = face["boxes"][index]
            if any(x1 - 10 <= cx <= x2 + 10 and y1 - 10 <= cy <= y2 + 10 for cx, cy in centres):
                hits[face["identity"]] += 1
    ms = 1000 * (time.perf_counter() - started) / len(frames)
    recall = {name: round(n / len(frames), 2) for name, n in hits.items()}
    occluders = {f["identity"]: f["occluder"] for f in truth["faces"]}
    print("demo recall: " + ", ".join(f"{n} ({occluders[n] or 'clear'}) {r:.0%}" for n, r in recall.items())
          + f"; {ms:.0f} ms/frame at 1280x720")
    if CROWD.exists():
        crowd = frames_of(CROWD, 300, 6)
        false_faces = np.mean([len(detector.detect(image)) for image in crowd])
        print(f"false faces on the crowd video: {false_faces:.2f} a frame ({len(crowd)} frames)")
    print(json.dumps({"recall": recall, "ms_per_frame": round(ms, 1)}))


if __name__ == "__main__":
    main()
