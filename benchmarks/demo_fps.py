"""End-to-end FPS of the demo clip on this machine, per stage, for each model set available here.

    .venv/bin/python benchmarks/demo_fps.py [--frames 120] [--repeats 3] [--out out/bench]

Writes ``demo_fps.json`` and ``demo_fps.md`` in --out. The offline default always runs; the real
models from ../shared (SCRFD-500MF + MobileFaceNet) run where that folder exists. Numbers are
medians of --repeats runs of the whole pipeline (decode, detect, segment, inpaint, embed, annotate,
encode) on the same clip; the first run of each set also warms caches and is not counted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
from pathlib import Path

import yaml

from engines import select_device
from streamer.config import parse_config
from streamer.demo import build_demo
from streamer.runtime import run

ROOT = Path(__file__).resolve().parents[1]
SHARED_MODELS = ROOT.parent / "shared" / "models"


def model_sets() -> dict[str, dict]:
    demo = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())  # what `make demo` runs
    sets = {
        "offline default as in configs/demo.yaml (the YuNet student + occluder YOLO-seg + learned inpainter + dlib "
        "and its student, each face with its mirror image)": demo,
        "the same, single view (embedder.mirror: false, dlib's default before 2026-12-05)": {
            **demo, "embedder": {"backend": "dlib", "mirror": False}},
        "the classical stages instead (colour anomaly + OpenCV Telea)": {
            **demo, "occlusion": {"backend": "color_anomaly"}, "inpainter": {"backend": "opencv"}},
    }
    if SHARED_MODELS.is_dir():
        sets["SCRFD-500MF + occluder YOLO-seg + learned inpainter + MobileFaceNet (../shared)"] = {
            "detector": {"backend": "scrfd", "model": str(SHARED_MODELS / "scrfd_500m_bnkps.onnx")},
            "embedder": {"backend": "arcface", "model": str(SHARED_MODELS / "mobilefacenet_128d.onnx")},
        }
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="out/bench")
    args = parser.parse_args()
    out = Path(args.out)
    clip_dir = out / "input"
    build_demo(clip_dir, frames=args.frames)
    rows = []
    for name, stages in model_sets().items():
        runs = []
        for i in range(args.repeats + 1):
            config = parse_config({
                **stages,
                "sources": [{"name": "demo", "uri": str(clip_dir / "demo.mp4")}],
                "gallery": {"dir": str(clip_dir / "gallery")},
                # a store of its own per model set: a gallery described by another embedder is refused
                "output": {"dir": str(out / "run" / hashlib.sha1(name.encode()).hexdigest()[:10])},
            })
            summary = run(config, banner=lambda line: None)
            if i:  # the first run warms caches
                runs.append(summary)
        fps = statistics.median(s.fps for s in runs)
        stage_ms = {k: round(statistics.median(s.stage_ms[k] for s in runs), 2) for k in runs[0].stage_ms}
        rows.append({"models": name, "fps": round(fps, 2), "frames": runs[0].total_frames, "stage_ms": stage_ms})
        print(f"{name}: {fps:.2f} fps, per item {stage_ms}")
    device = select_device("auto")
    report = {"machine": f"{platform.processor() or platform.machine()}, {device}", "clip": "demo 1280x720, 4 faces",
              "repeats": args.repeats, "results": rows}
    (out / "demo_fps.json").write_text(json.dumps(report, indent=1))
    lines = [
        "| models | FPS (end to end) | detect ms/frame | occlusion ms/face | inpaint ms/face | embed ms/view |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["stage_ms"]
        lines.append(f"| {r['models']} | {r['fps']} | {s.get('detect', 0)} | {s.get('occlusion', 0)} | "
                     f"{s.get('inpaint', 0)} | {s.get('embed', 0)} |")
    (out / "demo_fps.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
