"""Throughput on a Ray cluster with 1, 2, … workers: the same cameras (copies of one clip, every frame processed)
through `streamer run --cluster`, frames per second summed over the workers, as a ratio to one worker.

    ray start --head --port 6379 --num-cpus 2 --include-dashboard=false
    .venv/bin/python benchmarks/cluster_throughput.py --address 127.0.0.1:6379 --postgres postgresql://… \\
        --clip ../shared/data/video/intel_preview_head-pose-face-detection-female-and-male.gif --cameras 4

Each worker gets the cluster's CPUs divided by the worker count (cluster.cpus_per_worker), and its models as
many threads. The rate is each worker's frames over its loop's seconds (models loaded before), summed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cluster_cpus(address: str) -> float:
    script = ("import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
              "print(ray.cluster_resources()['CPU'])")
    return float(subprocess.run([sys.executable, "-c", script, address], capture_output=True, text=True,
                                check=True).stdout.split()[-1])


def measure(workers: int, cpus: float, args, folder: Path) -> dict:
    config = folder / f"w{workers}.yaml"
    sources = [{"name": f"cam-{i}", "uri": str(Path(args.clip).resolve())} for i in range(args.cameras)]
    config.write_text(json.dumps({
        "store": {"url": args.postgres},
        "cluster": {"address": args.address, "workers": workers, "cpus_per_worker": cpus / workers},
        "sources": sources}))
    out = folder / f"out-{workers}"
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "streamer", "run", str(config), "--out", str(out), "-q"],
                            cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - started
    if result.returncode:
        raise SystemExit(f"workers {workers}: streamer run failed:\n{result.stderr[-2000:]}")
    state = json.loads((out / "cluster.json").read_text())
    frames = sum(w["frames"] for w in state["workers"])
    fps = sum(w["frames"] / w["seconds"] for w in state["workers"] if w["seconds"])
    return {"workers": workers, "frames": frames, "fps": fps, "wall_s": wall,
            "nodes": len({w["node"] for w in state["workers"]})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="the Ray cluster's head, HOST:PORT")
    parser.add_argument("--postgres", required=True, metavar="URL", help="the shared store's database")
    parser.add_argument("--clip", required=True, help="the video every camera plays")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    cpus = cluster_cpus(args.address)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            rows.append(measure(workers, cpus, args, Path(tmp)))
            print(f"workers {workers}: {rows[-1]['fps']:.1f} fps", file=sys.stderr, flush=True)
    base = rows[0]["fps"]
    print(f"{args.cameras} cameras, {cpus:g} CPUs in the cluster\n")
    print("| workers | nodes used | frames | fps (sum of workers) | vs 1st row | wall, models loaded included |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['workers']} | {row['nodes']} | {row['frames']} | {row['fps']:.1f} | {row['fps'] / base:.2f}x | "
              f"{row['wall_s']:.1f} s |")


if __name__ == "__main__":
    main()
