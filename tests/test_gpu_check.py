"""The prepared GPU run (benchmarks/gpu_check.py) as a dry run on this CPU, with tiny sizes: the same script,
so that it cannot rot between the rare sessions that are lent a GPU."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def test_the_dry_run_measures_every_section_on_torch_and_brings_back_what_a_lease_can(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(SCRIPT), "run", "--dry-run", "--out", str(out), "--budget-s", "240"],
                          cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    files = sorted(p for p in out.rglob("*"))
    # What a lease brings back: 8 plain files at most, named in letters, digits, '.', '_' and '-'.
    assert all(p.is_file() and p.parent == out and re.fullmatch(r"[A-Za-z0-9._-]+", p.name) for p in files), files
    assert len(files) <= 8, files
    report = json.loads((out / "gpu-check.json").read_text())
    assert report["dry_run"] and not report["failed"] and not report["skipped"], report
    sections = report["sections"]
    assert set(sections) == {"cuda_tests", "models", "stages", "streams", "capacity"}
    assert sections["cuda_tests"]["counts"].get("skipped", 0) >= 5  # found, and skipped without a GPU
    measured = {row["model"] for row in sections["models"]["rows"] if row["items_per_s"] > 0}
    assert {"inpainter", "occluders"} <= measured
    # The pipeline ran with its ONNX models rebuilt in torch, end to end.
    assert any("occlusion" in line and "on torch" in line for line in sections["stages"]["models"])
    assert sections["streams"][0]["streamer_fps"] > 0
    assert "streams_held" in sections["capacity"]
    assert "Each model alone" in (out / "gpu-check.md").read_text()


def test_without_a_gpu_the_real_run_refuses_and_says_to_dry_run(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here: the real run would run")
    done = subprocess.run([sys.executable, str(SCRIPT), "run", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no CUDA GPU here" in done.stderr and "--dry-run" in done.stderr
    assert json.loads((tmp_path / "gpu-check.json").read_text())["failed"]["environment"]


def test_prepare_names_the_folder_that_lacks_the_models(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "prepare", "--shared", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (f"gpu-check: {tmp_path / 'models'} lacks scrfd_2.5g_bnkps.onnx, "
                                                    "mobilefacenet_128d.onnx (the detector and embedder measured)")
