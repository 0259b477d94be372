"""The prepared GPU run: every model on CUDA through torch, each stage's speed across batch sizes, the pipeline end to
end at 1080p, and the real-time capacity, in one script that fits a short lease on a borrowed GPU machine.

    python benchmarks/gpu_check.py prepare [--shared ../shared]     # here: what the GPU machine lacks
    python benchmarks/gpu_check.py run --out DIR [--budget-s 450]   # there (or on any CUDA machine)
    python benchmarks/gpu_check.py run --dry-run --out DIR          # on a CPU, tiny sizes: CI runs this

``prepare`` (``make gpu-check``) writes ``.gpu-check/``:
- ``site.tar.xz``: the Python packages the GPU machine lacks (PyAV, pydantic), installed from the registry's
  cp312 manylinux wheels and packed with xz: PyAV's wheel is 35 MB, the working tree may carry 64 MiB in all;
- ``models/``: the detector and embedder from ../shared (the product's own occluder model and inpainter
  travel with the tree), and ``config.yaml``, the pipeline measured;
- ``device-command.txt``: the command to run there, carrying ``.gpu-check``.

``run`` writes to ``--out`` (at most 8 files, as the lease brings back): ``gpu-check.json`` and ``gpu-check.md``
(the figures), ``cuda-tests.txt`` (the CUDA tests' output), and the bench's report and plots. The JSON is
rewritten after each section, so a run stopped at its time limit still brings back what it measured. Sections
are skipped, and said to be, when the budget left cannot hold them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREPARED = ROOT / ".gpu-check"
# What the GPU machine's image lacks of streamer's imports (its torch, numpy, OpenCV, onnx, onnxruntime (CPU),
# PyYAML, matplotlib and scikit-image serve as they are). Pinned: two versions of one package stop an install.
WHEELS = ["av==19.0.2", "pydantic==2.14.4", "pydantic-core==2.50.5", "annotated-types==0.8.0",
          "typing-inspection==0.4.5"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
SHARED_MODELS = {"detector": "scrfd_2.5g_bnkps.onnx", "embedder": "mobilefacenet_128d.onnx"}
CARRY_LIMIT = 64 * 2 ** 20
DEVICE_COMMAND = ("mkdir -p /tmp/site && tar -xJf .gpu-check/site.tar.xz -C /tmp/site && "
                  "PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py run --out $OUT "
                  "--config .gpu-check/config.yaml --budget-s 450")
MAX_FILES = 8  # what a lease brings back from $OUT


# ---------------------------------------------------------------------------------------------------- prepare


def prepare(shared: Path, out: Path = PREPARED) -> None:
    missing = [name for name in SHARED_MODELS.values() if not (shared / "models" / name).is_file()]
    if missing:
        sys.exit(f"gpu-check: {shared / 'models'} lacks {', '.join(missing)} (the detector and embedder measured)")
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        wheels, site = Path(folder) / "wheels", Path(folder) / "site"
        platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
        print(f"gpu-check: downloading {', '.join(WHEELS)}", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(wheels), *WHEELS],
                       check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
                        "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", *platforms,
                        "--target", str(site), *sorted(str(w) for w in wheels.iterdir())], check=True)
        print("gpu-check: packing them with xz (about a minute)", flush=True)
        archive = out / "site.tar.xz"
        subprocess.run(["tar", "-cJf", str(archive), "-C", str(site), "."], check=True,
                       env={**os.environ, "XZ_OPT": "-6 -T0"})
    models = out / "models"
    models.mkdir(exist_ok=True)
    for name in SHARED_MODELS.values():
        shutil.copyfile(shared / "models" / name, models / name)
    (out / "config.yaml").write_text(
        "# The pipeline gpu-check measures: ../shared's SCRFD and MobileFaceNet, the project's occluder model\n"
        "# and inpainter; on a GPU each ONNX model runs rebuilt in torch (FP16, CUDA graphs) where ONNX\n"
        "# Runtime has no CUDA build.\n"
        f"detector: {{backend: scrfd, model: .gpu-check/models/{SHARED_MODELS['detector']}, input_size: 640}}\n"
        f"embedder: {{backend: arcface, model: .gpu-check/models/{SHARED_MODELS['embedder']}}}\n"
        "occlusion: {backend: yolo_seg}\n"
        "inpainter: {backend: learned, max_batch: 64}\n")
    (out / "device-command.txt").write_text(DEVICE_COMMAND + "\n")
    carried = _tree_bytes() + sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"gpu-check: {out} ready; the working tree with it is {carried / 2 ** 20:.1f} MiB "
          f"(a lease carries {CARRY_LIMIT / 2 ** 20:.0f} MiB)")
    if carried > CARRY_LIMIT:
        sys.exit("gpu-check: too large to carry: leave ignored build outputs out of the tree")
    print(f"On the GPU machine, carrying .gpu-check:\n  {DEVICE_COMMAND}")


def _tree_bytes() -> int:
    """The tracked and untracked-but-not-ignored files' size: what a lease copies besides the carried paths."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    return sum((ROOT / name.decode()).stat().st_size for name in listed if name and (ROOT / name.decode()).is_file())


# ---------------------------------------------------------------------------------------------------- run


class Report:
    """gpu-check.json, rewritten after each section so that a run cut short keeps what it measured."""

    def __init__(self, out: Path, budget_s: float):
        self.out, self.started, self.budget_s = out, time.monotonic(), budget_s
        self.data: dict = {"sections": {}, "skipped": {}, "failed": {}}
        out.mkdir(parents=True, exist_ok=True)

    def left_s(self) -> float:
        return self.budget_s - (time.monotonic() - self.started)

    def section(self, name: str, needs_s: float, work) -> None:
        if self.left_s() < needs_s:
            self.data["skipped"][name] = f"{self.left_s():.0f} s of the budget left, {needs_s:.0f} s needed"
            print(f"gpu-check: {name} skipped ({self.data['skipped'][name]})", flush=True)
        else:
            print(f"gpu-check: {name} ({self.left_s():.0f} s left)", flush=True)
            began = time.monotonic()
            try:
                self.data["sections"][name] = work()
            except Exception as exc:  # a section failing costs its own figures, not the others'
                self.data["failed"][name] = f"{type(exc).__name__}: {exc}"
                print(f"gpu-check: {name} failed: {self.data['failed'][name]}", flush=True)
            self.data.setdefault("seconds", {})[name] = round(time.monotonic() - began, 1)
        self.write()

    def write(self) -> None:
        (self.out / "gpu-check.json").write_text(json.dumps(self.data, indent=1))
        (self.out / "gpu-check.md").write_text(markdown(self.data))


def environment(device) -> dict:
    import platform

    import torch

    from streamer import __version__

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    gpu = torch.cuda.get_device_name(0) if device.is_cuda else None
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "streamer": __version__,
            "commit": commit.stdout.strip() or None, "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "gpu": gpu, "cpu_cores": os.cpu_count(), "device": str(device)}


def cuda_tests(out: Path, timeout_s: float) -> dict:
    """The tests marked needs_cuda (on a CPU they skip: the dry run checks they are found and run)."""
    command = [sys.executable, "-m", "pytest", "-q", "-m", "needs_cuda", "-p", "no:cacheprovider", "-rs",
               "tests/test_torch_runtime.py", "tests/test_inpainter.py", "tests/test_engines.py"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    (out / "cuda-tests.txt").write_text(done.stdout + done.stderr)
    summary = (done.stdout.strip().splitlines() or ["no output"])[-1]
    counts = {kind: int(number) for number, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?)\b", summary)}
    return {"exit_code": done.returncode, "summary": summary, "counts": counts}


def network_speeds(config, device, batches: list[int], seconds: float, budget_s: float) -> dict:
    """Each model alone (inputs to outputs, host to host), on torch, at each batch size: items/s and ms per call;
    the inpainter also in FP32 without CUDA graphs, the baseline its FP16 + CUDA graphs figure is a ratio of. A
    model that fails costs its own rows (said in ``errors``); past ``budget_s`` the larger batches are skipped."""
    import numpy as np

    from engines.torch_engine import TorchEngine
    from streamer.inpaint.learned import DEFAULT_MODEL
    from streamer.occlusion.yolo_seg import DEFAULT_MODEL as OCCLUDER_MODEL

    fast = {"fp16": device.is_cuda, "cuda_graphs": device.is_cuda}
    models = {"inpainter": (DEFAULT_MODEL, (3, 128, 128)), "occluders": (OCCLUDER_MODEL, (3, 160, 160))}
    if getattr(config.embedder, "model", None):
        models["embedder"] = (Path(config.embedder.model), (3, 112, 112))
    if getattr(config.detector, "model", None):
        models["detector"] = (Path(config.detector.model), (3, 384, 640))  # a 1080p frame fitted to 640 px
    rng = np.random.default_rng(0)
    results: dict = {"rows": [], "peak_gpu_mb": None, "errors": {}, "skipped": []}
    deadline = time.monotonic() + budget_s
    variants = [(name, path, shape, fast, "fast") for name, (path, shape) in models.items()]
    variants.append(("inpainter", DEFAULT_MODEL, (3, 128, 128), {"fp16": False, "cuda_graphs": False}, "fp32 eager"))
    for name, path, shape, options, label in variants:
        try:
            engine = TorchEngine.from_onnx(path, device, **options)
            free = engine.inputs[0].shape[0] is None
            for batch in batches if free else [engine.inputs[0].shape[0]]:
                if time.monotonic() > deadline:
                    results["skipped"].append(f"{name} {label} batch {batch}")
                    continue
                results["rows"].append(_speed(engine, name, label, shape, batch, seconds, rng))
            del engine
        except Exception as exc:  # one model failing on this GPU costs its own rows, not the others'
            results["errors"][f"{name} {label}"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    fast_64 = _rate(results["rows"], "inpainter", "fast", 64)
    slow_64 = _rate(results["rows"], "inpainter", "fp32 eager", 64)
    results["inpainter_batch64_faces_per_s"] = fast_64
    results["inpainter_fp16_graphs_over_fp32_eager"] = round(fast_64 / slow_64, 2) if fast_64 and slow_64 else None
    if device.is_cuda:
        import torch

        results["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    return results


def _speed(engine, name: str, label: str, shape: tuple, batch: int, seconds: float, rng) -> dict:
    import numpy as np

    feeds = {spec.name: rng.random((batch, *((1, *shape[1:]) if spec.name == "hole" else shape)), dtype=np.float32)
             for spec in engine.inputs}
    if "hole" in feeds:
        feeds["hole"] = (feeds["hole"] > 0.6).astype(np.float32)
    for _ in range(3):  # the first calls work out shapes and capture graphs
        engine.run(feeds)
    calls, began = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - began < seconds:
        engine.run(feeds)
        calls += 1
    elapsed = time.perf_counter() - began
    return {"model": name, "variant": label, "batch": batch, "items_per_s": round(batch * calls / elapsed, 1),
            "ms_per_call": round(1000 * elapsed / calls, 3)}


def _rate(rows: list[dict], model: str, variant: str, batch: int) -> float | None:
    return next((r["items_per_s"] for r in rows if (r["model"], r["variant"], r["batch"]) == (model, variant, batch)),
                None)


def bench(config_path: Path | None, bench_out: Path, args: list[str], timeout_s: float) -> dict:
    """``streamer bench`` with ``args`` (a section of it); its report as JSON."""
    command = [sys.executable, "-m", "streamer", "bench", "--out", str(bench_out), "--no-baseline", *args]
    if config_path:
        command += ["--config", str(config_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    report = bench_out / "bench.json"
    if done.returncode != 0 and not report.exists():
        raise RuntimeError((done.stderr.strip().splitlines() or ["streamer bench failed"])[-1])
    return json.loads(report.read_text())


def run(out: Path, config_path: Path | None, budget_s: float, dry_run: bool) -> int:
    sys.path.insert(0, str(ROOT))
    from streamer.config import load_config, parse_config

    report = Report(out, budget_s)
    if dry_run:
        # The same script on a CPU with tiny sizes: the models rebuilt in torch, offline stages only.
        data = {"engine": {"device": "cpu", "onnx_runtime": "torch"}, "detector": {"backend": "haar"},
                "embedder": {"backend": "lbp_histogram"}, "occlusion": {"backend": "yolo_seg"},
                "inpainter": {"backend": "learned", "max_batch": 4}}
        config = parse_config(data, "gpu-check dry run")
        config_path = Path(tempfile.mkdtemp(prefix="gpu-check-config-")) / "dry-run.yaml"
        import yaml

        config_path.write_text(yaml.safe_dump(data))
        batches, seconds = [1, 2], 0.05
        sizes = {"size": "480x270", "frames": "6", "streams": ["1"], "fps": "10", "capacity_seconds": "1",
                 "max_streams": "1", "capacity_start": "1", "faces": "1"}
    else:
        config = load_config(config_path) if config_path else parse_config({})
        batches, seconds = [1, 8, 64, 256], 0.5
        # The capacity search starts at 16 streams (then doubles while they hold, and bisects): walking up from 1,
        # with a fresh process per try, would spend the lease before reaching the streams a GPU holds.
        sizes = {"size": "1920x1080", "frames": "40", "streams": ["1", "8", "32", "64"], "fps": "25",
                 "capacity_seconds": "5", "max_streams": "128", "capacity_start": "16", "faces": "4"}
    device = config.engine.select_device()
    report.data["environment"] = environment(device)
    report.data["dry_run"] = dry_run
    report.write()
    if not device.is_cuda and not dry_run:
        report.data["failed"]["environment"] = f"no CUDA GPU here ({device.reason}): run with --dry-run on a CPU"
        report.write()
        print(f"gpu-check: {report.data['failed']['environment']}", file=sys.stderr)
        return 2
    report.section("cuda_tests", 60 if not dry_run else 10,
                   lambda: cuda_tests(out, timeout_s=min(150.0, report.left_s() - 240 if not dry_run else 120.0)))
    report.section("models", 60 if not dry_run else 5,
                   lambda: network_speeds(config, device, batches, seconds, budget_s=max(20.0, report.left_s() - 240)))
    scratch = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    common = ["--size", sizes["size"], "--fps", sizes["fps"], "--frames", sizes["frames"],
              "--multi-faces", sizes["faces"]]
    report.section("stages", 60 if not dry_run else 5, lambda: _stages_of(bench(
        config_path, scratch / "stages", ["--only", "stages", *common, "--batch-sizes", *map(str, batches)],
        timeout_s=max(30.0, min(120.0, report.left_s() - 240)))))
    # The capacity, the headline figure, before the streams sweep: a run cut short keeps it.
    report.section("capacity", 90 if not dry_run else 5, lambda: bench(
        config_path, scratch / "capacity", ["--only", "capacity", *common, "--capacity-size", sizes["size"],
                                            "--capacity-fps", "25", "--capacity-seconds", sizes["capacity_seconds"],
                                            "--latency-bound-ms", "150", "--max-streams", sizes["max_streams"],
                                            "--capacity-start", sizes["capacity_start"]],
        timeout_s=max(30.0, report.left_s() - 60))["capacity"])
    report.section("streams", 40 if not dry_run else 5, lambda: _streams_of(bench(
        config_path, scratch / "streams", ["--only", "streams", *common, "--streams", *sizes["streams"]],
        timeout_s=max(30.0, report.left_s()))))
    _bring_back(scratch, out)
    report.write()
    failed = report.data["failed"]
    tests = report.data["sections"].get("cuda_tests", {})
    print(f"gpu-check: wrote {out / 'gpu-check.json'}; " + (f"failed: {', '.join(failed)}" if failed else "all ran"))
    return 1 if failed or tests.get("exit_code", 0) not in (0, 5) else 0


def _stages_of(report: dict) -> dict:
    return report["stages"]


def _streams_of(report: dict) -> list[dict]:
    from streamer.bench.report import end_to_end_rows

    return end_to_end_rows(report)


def _bring_back(scratch: Path, out: Path) -> None:
    """The bench's reports and plots, as many as the lease brings back (8 files in all)."""
    room = MAX_FILES - sum(1 for p in out.iterdir() if p.is_file())  # gpu-check.json and .md are there already
    found = sorted(scratch.glob("*/bench.md")) + sorted(scratch.glob("*/*.png"))
    for path in found[:max(0, room)]:
        shutil.copyfile(path, out / f"{path.parent.name}-{path.name}")
    shutil.rmtree(scratch, ignore_errors=True)


def markdown(data: dict) -> str:
    env = data.get("environment", {})
    lines = [f"# gpu-check {'(dry run, CPU)' if data.get('dry_run') else ''}", "",
             f"{env.get('date')}, commit {env.get('commit')}, {env.get('gpu') or env.get('device')}, torch "
             f"{env.get('torch')} (CUDA {env.get('cuda')}), {env.get('cpu_cores')} cores.", ""]
    sections = data["sections"]
    if "cuda_tests" in sections:
        lines += [f"CUDA tests: {sections['cuda_tests']['summary']}", ""]
    if "models" in sections:
        models = sections["models"]
        lines += ["## Each model alone (host to host)", "", "| model | variant | batch | items/s | ms/call |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['variant']} | {r['batch']} | {r['items_per_s']} | {r['ms_per_call']} |"
                  for r in models["rows"]]
        lines += [f"- failed: {variant}: {why}" for variant, why in models.get("errors", {}).items()]
        lines += ["", f"Inpainter at batch 64: {models['inpainter_batch64_faces_per_s'] or '-'} faces/s; FP16 + CUDA "
                  f"graphs over FP32 eager: {models['inpainter_fp16_graphs_over_fp32_eager'] or '-'}x. Peak GPU "
                  f"memory: {models['peak_gpu_mb'] or '-'} MB.", ""]
    if "streams" in sections:
        lines += ["## End to end", "", "| streams | fps | p99 ms | GPU MB |", "|---|---|---|---|"]
        lines += [f"| {r['streams']} | {r['streamer_fps']} | {r['p99_ms']} | {r['gpu_mb']} |"
                  for r in sections["streams"]]
        lines.append("")
    if "capacity" in sections:
        capacity = sections["capacity"]
        lines += [f"Real-time capacity: {capacity['streams_held']} streams of {capacity['clip']} at "
                  f"{capacity['source_fps']} fps, each keeping >= 98% of frames with p99 <= "
                  f"{capacity['latency_bound_ms']} ms.", ""]
    for kind in ("skipped", "failed"):
        lines += [f"- {kind}: {name}: {why}" for name, why in data[kind].items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="here: the packages and models the GPU machine lacks, in .gpu-check/")
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    r = sub.add_parser("run", help="on the GPU machine (or --dry-run on a CPU)")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--config", type=Path, help="the pipeline measured (prepare writes .gpu-check/config.yaml)")
    r.add_argument("--budget-s", type=float, default=450.0, help="seconds for all sections together")
    r.add_argument("--dry-run", action="store_true", help="on a CPU, tiny sizes, offline stages")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.shared)
        return 0
    return run(args.out, args.config, args.budget_s, args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
