"""One measurement in a process of its own: reads a case (JSON) on stdin, prints its result (JSON) on stdout.

A fresh process per case keeps each case's peak RSS and GPU memory its own, and no case warms the
caches of the next.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from streamer.bench.inputs import Clip
from streamer.bench.measure import GpuMemorySampler, peak_rss_mb
from streamer.config import Config, parse_config


def case_config(case: dict, clip: Clip) -> Config:
    """The measured config: the user's stages, ``streams`` copies of the clip as sources, outputs in
    the case's folder. Video is written as MPEG-4 Part 2, what the baseline's OpenCV writer encodes."""
    data = dict(case["config"])
    out = Path(case["out_dir"])
    realtime = case.get("realtime", False)
    data["sources"] = [{"name": f"cam{i + 1}", "uri": str(clip.path), "max_frames": case["frames"],
                        "realtime": realtime, "mode": "latest" if realtime else "every_frame"}
                       for i in range(case["streams"])]
    if clip.gallery:
        data["gallery"] = {**data.get("gallery", {}), "dir": str(clip.gallery)}
    data["store"] = {**data.get("store", {}), "path": str(out / "streamer.db")}
    data["output"] = {**data.get("output", {}), "dir": str(out), "codec": "mpeg4", "webhook": None}
    data["web"] = {"enabled": False}
    return parse_config(data, "bench config")


def _pipeline(case: dict, clip: Clip) -> dict:
    from streamer.runtime import run

    config = case_config(case, clip)
    summary = run(config, banner=lambda line: None)
    return {
        "fps": round(summary.fps, 2),
        "seconds": round(summary.seconds, 2),
        "frames": summary.total_frames,
        "stream_fps": {name: round(n / summary.seconds, 2) for name, n in summary.frames.items()},
        "dropped": summary.dropped,
        "latency_ms": summary.latency_ms,
        "stage_ms": {k: round(v, 2) for k, v in summary.stage_ms.items()},
        "inpainted": summary.inpainted,
        "reused": summary.reused,
        "errors": summary.errors,
    }


def _baseline(case: dict, clip: Clip) -> dict:
    from streamer.bench.baseline import run_baseline
    from streamer.identify import open_identification
    from streamer.stages import Stages

    config = case_config(case, clip)
    stages = Stages.build(config, config.engine.select_device())
    with open_identification(config, stages.detector, stages.embedder) as identification:
        done = run_baseline(stages, identification.resolver, [clip.path] * case["streams"], Path(case["out_dir"]),
                            case["frames"])
    return {"fps": round(done.fps, 2), "seconds": round(done.seconds, 2), "frames": done.frames,
            "faces": done.faces, "latency_ms": done.latency.summary_ms()}


def _stages(case: dict, clip: Clip) -> dict:
    from streamer.bench.stage_sweep import sweep_stages
    from streamer.stages import Stages

    config = case_config({**case, "streams": 1}, clip)
    stages = Stages.build(config, config.engine.select_device())
    return {"device": str(stages.device), "models": stages.describe()[:5],
            **sweep_stages(stages, clip.path, case["batch_sizes"])}


def _decode(case: dict, clip: Clip) -> dict:
    from streamer.bench.decode import decode_ceiling

    return decode_ceiling(clip.path, case["frames"], case["stream_counts"])


KINDS = {"pipeline": _pipeline, "baseline": _baseline, "stages": _stages, "decode": _decode}


def run_case(case: dict) -> dict:
    clip = Clip.from_dict(case["clip"])
    Path(case["out_dir"]).mkdir(parents=True, exist_ok=True)
    with GpuMemorySampler() as gpu:
        result = KINDS[case["kind"]](case, clip)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    result["gpu_peak_mb"] = gpu.peak_mb
    result["gpu_memory_scope"] = gpu.scope or None
    return result


def main() -> None:
    import logging

    logging.basicConfig(level=logging.ERROR)
    case = json.loads(sys.stdin.read())
    result = run_case(case)
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
