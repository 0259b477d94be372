"""What ``streamer bench`` measures, in order, each case in a fresh worker process."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from streamer.bench.inputs import Clip, demo_clip, probe
from streamer.errors import StreamerError

SECTIONS = ("decode", "stages", "streams", "faces", "clips", "capacity")


@dataclass
class BenchPlan:
    config: dict  # the stages to measure, validated config as data (sources are the bench's own)
    config_label: str
    out: Path
    size: tuple[int, int] = (1280, 720)
    fps: int = 15
    frames: int = 60  # per stream and case
    streams: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    faces: list[int] = field(default_factory=lambda: [0, 1, 4, 8])
    multi_faces: int = 4  # faces per frame of the clip the streams sweep runs on
    clips: list[Path] = field(default_factory=list)  # real footage, 1 stream each
    batch_sizes: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32])
    baseline: bool = True
    capacity_size: tuple[int, int] = (1280, 720)
    capacity_fps: int = 25
    capacity_seconds: float = 10.0
    latency_bound_ms: float = 1000.0
    max_streams: int = 64
    capacity_start: int = 1  # the first stream count tried (a GPU's search need not walk up from 1)
    sections: tuple[str, ...] = SECTIONS


def run_worker(case: dict, timeout_s: float = 3600) -> dict:
    what = f"bench case {case['kind']} on {Path(case['clip']['path']).name} x{case['streams']}"
    try:
        process = subprocess.run([sys.executable, "-m", "streamer.bench.worker"], input=json.dumps(case),
                                 capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise StreamerError(f"{what} failed: still running after {timeout_s:.0f} s") from None
    if process.returncode != 0:
        last = (process.stderr.strip().splitlines() or ["no output"])[-1]
        raise StreamerError(f"{what} failed: {last}")
    return json.loads(process.stdout.strip().splitlines()[-1])


class Suite:
    def __init__(self, plan: BenchPlan, say=print):
        self.plan, self.say = plan, say
        self.cases: list[dict] = []
        self._count = 0

    def _case(self, kind: str, clip: Clip, section: str, streams: int = 1, **extra) -> dict:
        self._count += 1
        case = {"kind": kind, "clip": clip.as_dict(), "config": self.plan.config, "streams": streams,
                "frames": self.plan.frames, "out_dir": str(self.plan.out / "runs" / f"{self._count:03d}-{kind}"),
                **extra}
        started = time.monotonic()
        record = {"section": section, "kind": kind, "clip": clip.label, "streams": streams,
                  "faces_per_frame": clip.faces_per_frame, "result": None, "error": None}
        try:
            record["result"] = result = run_worker(case)
            outcome = f"{result['fps']:.2f} fps" if "fps" in result else "done"
        except StreamerError as exc:
            # One case failing (a model that will not load on this GPU, a worker killed for memory) costs
            # its own figures, not the ones measured before and after it.
            record["error"] = outcome = str(exc)
        self.cases.append(record)
        self.say(f"[{section}] {kind} {clip.label} x{streams}: {outcome} ({time.monotonic() - started:.0f} s)")
        return record

    def _pair(self, clip: Clip, section: str, streams: int) -> None:
        self._case("pipeline", clip, section, streams)
        if self.plan.baseline:
            self._case("baseline", clip, section, streams)

    def run(self) -> dict:
        plan = self.plan
        cache = plan.out / "clips"
        multi = demo_clip(cache, plan.multi_faces, plan.size, plan.frames, plan.fps)
        sections = set(plan.sections)
        decode = stages = None
        if "decode" in sections:
            decode = self._case("decode", multi, "decode", stream_counts=plan.streams)["result"]
        if "stages" in sections:
            stages = self._case("stages", multi, "stages", batch_sizes=plan.batch_sizes)["result"]
        if "streams" in sections:
            for n in plan.streams:
                self._pair(multi, "streams", n)
        if "faces" in sections:
            for faces in plan.faces:
                self._pair(demo_clip(cache, faces, plan.size, plan.frames, plan.fps), "faces", 1)
        if "clips" in sections:
            for path in plan.clips:
                self._pair(probe(path), "clips", 1)
        capacity = self._capacity(cache) if "capacity" in sections else None
        return {
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "python": platform.python_version()},
            "config": plan.config_label,
            "plan": {"size": list(plan.size), "fps": plan.fps, "frames_per_stream": plan.frames,
                     "multi_faces": plan.multi_faces, "latency_bound_ms": plan.latency_bound_ms,
                     "capacity_size": list(plan.capacity_size), "capacity_fps": plan.capacity_fps,
                     "capacity_seconds": plan.capacity_seconds},
            "decode": decode, "stages": stages, "cases": self.cases, "capacity": capacity,
            "failures": [c["error"] for c in self.cases if c["error"]],
        }

    def _capacity(self, cache: Path) -> dict:
        """The most streams held in real time: paced like cameras (newest frame wins, drops counted),
        each stream keeping at least 98% of its frames with the p99 decode-to-output latency under
        the bound. Doubles the streams, then bisects between the last held and the first missed."""
        plan = self.plan
        frames = int(plan.capacity_fps * plan.capacity_seconds)
        clip = demo_clip(cache, plan.multi_faces, plan.capacity_size, frames, plan.capacity_fps)
        tried: dict[int, dict] = {}

        def held(n: int) -> bool:
            record = self._case("pipeline", clip, "capacity", n, realtime=True, frames=frames)
            result = record["result"]
            if result is None:
                tried[n] = {"held": False, "min_kept": 0.0, "p99_ms": None, "stream_fps": {}, "error": record["error"]}
                return False
            kept = [1 - result["dropped"].get(name, 0) / max(frames, 1) for name in result["stream_fps"]]
            p99 = result["latency_ms"].get("total", {}).get("p99", float("inf"))
            ok = bool(kept) and min(kept) >= 0.98 and p99 <= plan.latency_bound_ms and not result["errors"]
            tried[n] = {"held": ok, "min_kept": round(min(kept, default=0), 3), "p99_ms": p99,
                        "stream_fps": result["stream_fps"]}
            return ok

        start = max(1, min(plan.capacity_start, plan.max_streams))
        if start > 1 and not held(start):
            best, missed = 0, start  # below the first guess: bisect between none and it
        else:
            best, n = (start, start * 2) if start > 1 else (0, 1)
            while n <= plan.max_streams and held(n):
                best, n = n, n * 2
            missed = n
        for _ in range(3):
            middle = (best + missed) // 2
            if middle in (best, missed) or missed > plan.max_streams:
                break
            if held(middle):
                best = middle
            else:
                missed = middle
        return {"streams_held": best, "clip": clip.label, "source_fps": plan.capacity_fps,
                "latency_bound_ms": plan.latency_bound_ms, "tried": {str(k): v for k, v in sorted(tried.items())}}
