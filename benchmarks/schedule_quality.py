"""What the speed-up schedules cost in what an operator sees: full-frame detection and per-face
analysis on every frame (``full_detection_every: 1``, ``reanalyse_every: 1``) against the defaults
(5 and 5), and the defaults with every frame searched in full (1 and 5: what the region search alone
does), through the whole pipeline, on real footage and on the demo clip.

    .venv/bin/python benchmarks/schedule_quality.py [--models shared|default] [--max-frames 300]
        [--out DIR]

Per clip and schedule: FPS; the faces shown (confirmed tracks) and, against the every-frame run,
the share of its shown faces the faster run also shows (box IoU >= 0.5) with their mean IoU; the
number of tracks; the share of shown faces that carry a name; the distinct identities decided
(pseudo-identities on real footage, which has no gallery: fewer means less fragmentation). On the
demo clip, whose faces are known, also the share of shown faces named correctly. Each run starts
with a fresh store. Models (``--models``): shared, SCRFD-2.5GF and MobileFaceNet of ../shared; default,
the offline default's (the shipped YuNet student with dlib's points, dlib's descriptor with its
student); the occluder YOLO-seg and the learned inpainter either way.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from streamer.config import parse_config
from streamer.demo import build_demo
from streamer.runtime import run
from streamer.track.iou import iou_matrix

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REAL_CLIPS = ["intel_one-by-one-person-detection.mp4", "intel_preview_head-pose-face-detection-female-and-male.gif",
              "intel_preview_face-demographics-walking.gif", "intel_preview_classroom.gif"]
SCHEDULES = {"every frame": (1, 1), "defaults": (5, 5), "defaults, no region search": (1, 5)}
MODELS = {"shared": {"detector": {"backend": "scrfd", "model": str(SHARED / "models" / "scrfd_2.5g_bnkps.onnx")},
                     "embedder": {"backend": "arcface", "model": str(SHARED / "models" / "mobilefacenet_128d.onnx")}},
          "default": {}}


class _ShownFaces:
    """A frame sink keeping what the operator sees of each frame: boxes, track IDs, names."""

    def __init__(self, shown: dict):
        self.shown = shown

    def write(self, frame) -> None:
        self.shown[frame.result.frame.index] = [(f.box.copy(), f.track_id, f.match.identity if f.match else None)
                                                for f in frame.result.faces if f.track_id >= 0]

    def close(self) -> None:
        pass

    def files(self) -> list:
        return []


def shown_faces(config) -> tuple[dict[int, list[tuple[np.ndarray, int, str | None]]], float]:
    """{frame index: [(box, track ID, name shown)]} of one stream as the operator sees it, and the FPS."""
    shown: dict[int, list] = {}
    summary = run(config, banner=lambda line: None, extra_frame_sinks=[lambda stream: _ShownFaces(shown)])
    return shown, summary.fps


def compare(run: dict, reference: dict) -> dict:
    found, ious = 0, []
    for index, faces in reference.items():
        ours = run.get(index, [])
        if not faces or not ours:
            continue
        overlap = iou_matrix(np.stack([b for b, _, _ in faces]), np.stack([b for b, _, _ in ours])).max(axis=1)
        found += int((overlap >= 0.5).sum())
        ious += overlap[overlap >= 0.5].tolist()
    total = sum(len(f) for f in reference.values())
    return {"also_shown": round(found / total, 3) if total else None,
            "mean_iou": round(float(np.mean(ious)), 3) if ious else None}


def summarise(run: dict) -> dict:
    faces = [face for faces in run.values() for face in faces]
    named = [name for _, _, name in faces if name]
    return {"faces_shown": len(faces), "tracks": len({t for _, t, _ in faces}),
            "named": round(len(named) / len(faces), 3) if faces else None, "identities": len(set(named))}


def correct_names(run: dict, truth: dict) -> float:
    """Share of shown faces whose name is the person at that place (the nearest true face centre)."""
    right = total = 0
    for index, faces in run.items():
        boxes = np.array([f["boxes"][index] for f in truth["faces"]])
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        for box, _, name in faces:
            nearest = int(np.argmin((((box[:2] + box[2:]) / 2 - centres) ** 2).sum(axis=1)))
            right += name == truth["faces"][nearest]["identity"]
            total += 1
    return round(right / total, 3) if total else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", choices=sorted(MODELS), default="shared",
                        help="shared: SCRFD-2.5GF and MobileFaceNet; default: the offline default's")
    parser.add_argument("--max-frames", type=int, default=300, help="frames per clip at most")
    parser.add_argument("--out", help="default: out/bench/schedule (shared), out/bench/schedule-default (default)")
    args = parser.parse_args()
    out = Path(args.out or ("out/bench/schedule" if args.models == "shared" else f"out/bench/schedule-{args.models}"))
    demo_dir = out / "demo"
    truth = build_demo(demo_dir, frames=min(args.max_frames, 120))
    clips = [("demo 1280x720, 4 faces (known names)", demo_dir / "demo.mp4", demo_dir / "gallery")]
    clips += [(name, SHARED / "data" / "video" / name, None) for name in REAL_CLIPS]
    rows = []
    for label, path, gallery in clips:
        runs = {}
        for schedule, (full_every, reanalyse_every) in SCHEDULES.items():
            run_dir = out / "runs" / f"{path.stem}-{full_every}-{reanalyse_every}"
            shutil.rmtree(run_dir, ignore_errors=True)
            config = parse_config({
                **MODELS[args.models],
                "sources": [{"name": "clip", "uri": str(path), "max_frames": args.max_frames}],
                "pipeline": {"full_detection_every": full_every, "reanalyse_every": reanalyse_every},
                **({"gallery": {"dir": str(gallery)}} if gallery else {}),
                "store": {"path": str(run_dir / "streamer.db")},
                "output": {"dir": str(run_dir), "video": False},
            }, "schedule_quality")
            runs[schedule], fps = shown_faces(config)
            row = {"clip": label, "schedule": schedule, "full_detection_every": full_every,
                   "reanalyse_every": reanalyse_every, "fps": round(fps, 2), **summarise(runs[schedule]),
                   **compare(runs[schedule], runs["every frame"])}
            if gallery:
                row["correct_names"] = correct_names(runs[schedule], truth)
            rows.append(row)
            print(json.dumps(row), flush=True)
    (out / "schedule_quality.json").write_text(json.dumps(rows, indent=1))
    lines = ["| clip | schedule | fps | faces shown | every-frame run's faces also shown (IoU ≥ 0.5) | mean IoU | "
             "tracks | named | identities | correct names |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['clip']} | {r['schedule']} | {r['fps']} | {r['faces_shown']} | {r['also_shown']} | "
                     f"{r['mean_iou']} | {r['tracks']} | {r['named']} | {r['identities']} | "
                     f"{r.get('correct_names', '-')} |")
    (out / "schedule_quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
