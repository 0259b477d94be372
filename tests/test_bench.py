"""streamer bench: the report a benchmark user reads, and the scheduling that makes streamer fast."""

import json

import av
import cv2
import numpy as np
import pytest

from streamer.demo import build_demo
from streamer.latency import LatencyRecorder
from streamer.records import Face, Occlusion, VideoFrame
from tests.conftest import need_shared, run_cli


def test_latency_percentiles_are_those_of_the_frames():
    recorder = LatencyRecorder()
    for ms in range(1, 101):  # 1..100 ms
        recorder.add({"detect": ms / 1000, "total": 2 * ms / 1000})
    summary = recorder.summary_ms()
    assert list(summary) == ["detect", "total"]
    assert summary["detect"]["p50"] == pytest.approx(50.5)
    assert summary["detect"]["p99"] == pytest.approx(99.01)
    assert summary["total"]["p95"] == pytest.approx(190.1)
    assert summary["total"]["frames"] == 100


def _demo_frames(tmp_path, count, faces=3):
    build_demo(tmp_path, frames=count, size=(960, 540), faces=faces)
    with av.open(str(tmp_path / "demo.mp4")) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def test_demo_clip_holds_the_asked_number_of_faces(tmp_path):
    truth = build_demo(tmp_path, frames=3, size=(1280, 720), faces=7)
    assert len(truth["faces"]) == 7 and all(len(f["boxes"]) == 3 for f in truth["faces"])
    boxes = np.array([f["boxes"][0] for f in truth["faces"]])
    overlap = [(max(a[0], b[0]) < min(a[2], b[2])) and (max(a[1], b[1]) < min(a[3], b[3]))
               for i, a in enumerate(boxes) for b in boxes[i + 1:]]
    assert not any(overlap)  # every face is in full view
    assert build_demo(tmp_path / "none", frames=2, size=(640, 360), faces=0)["faces"] == []


def test_region_frames_find_the_faces_that_full_frames_find(tmp_path, cpu):
    from streamer.detect.regions import RegionScheduler
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
    from streamer.track.iou import iou_matrix

    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=need_shared("models", "scrfd_2.5g_bnkps.onnx")), cpu)
    assert detector.supports_regions  # its input size is dynamic
    images = _demo_frames(tmp_path, 10)
    scheduler = RegionScheduler(detector, full_every=5)
    for k, image in enumerate(images):
        found = scheduler.detect([VideoFrame("cam", k, image, None, 0.0, 0.0)])[0]
        full = detector.detect(image)
        if k % 5:  # a region frame: the same faces, boxes and eyes within a few pixels
            assert len(found) == len(full) == 3, k
            best = iou_matrix(found.boxes, full.boxes).argmax(axis=1)
            assert (iou_matrix(found.boxes, full.boxes).max(axis=1) > 0.8).all(), k
            assert np.abs(found.landmarks[:, :2] - full.landmarks[best, :2]).max() < 6, k
    assert (scheduler.full_frames, scheduler.region_frames) == (2, 8)
    # A second stream takes its key frames out of step with the first.
    other = RegionScheduler(detector, full_every=5)
    for k in range(6):
        found = other.detect([VideoFrame(stream, k, images[k], None, 0.0, 0.0) for stream in ("a", "b")])
        assert [len(f) for f in found] == [3, 3], k  # both streams' regions, searched in one mosaic
    assert other.full_frames == 3  # a: frames 0 and 5, b: frame 0 only (its next is frame 6)
    # A batch holding one stream's consecutive frames searches each around what the one before found.
    again = RegionScheduler(detector, full_every=5)
    found = again.detect([VideoFrame("cam", k, images[k], None, 0.0, 0.0) for k in range(4)])
    assert [len(f) for f in found] == [3, 3, 3, 3] and (again.full_frames, again.region_frames) == (1, 3)
    # A cut (told by the tracker): the next frame is searched in full, whatever the key frame schedule says.
    again.search_in_full("cam")
    again.detect([VideoFrame("cam", 4, images[4], None, 0.0, 0.0)])
    assert (again.full_frames, again.region_frames) == (2, 3)


def test_region_mosaics_take_few_input_shapes_however_faces_vary(tmp_path, cpu):
    """ONNX Runtime keeps memory planned per input shape: faces of every size and number must not grow
    memory for as long as a stream runs."""
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector

    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=need_shared("models", "scrfd_2.5g_bnkps.onnx")), cpu)
    shapes, candidates = set(), detector._candidates
    detector._candidates = lambda canvas: shapes.add(canvas.shape) or candidates(canvas)
    rng = np.random.default_rng(0)
    face = _demo_frames(tmp_path, 1)[0]
    for count in range(1, 20):
        sides = rng.integers(20, 900, count)
        crops = [np.ascontiguousarray(cv2.resize(face[:300, :300], (int(n), int(n)))) for n in sides]
        frames = [(720, 1280, 3) if k % 2 else (270, 480, 3) for k in range(count)]
        assert len(detector.detect_regions(crops, frames)) == count
    assert len(shapes) <= 20, sorted(shapes)


def test_detectors_whose_cost_does_not_shrink_with_the_region_detect_every_frame_in_full(haar):
    from streamer.detect.regions import RegionScheduler

    assert RegionScheduler(haar, full_every=5).full_every == 1


def test_a_followed_face_carries_its_occlusion_between_analyses():
    from streamer.track.reanalysis import ReanalysisSchedule

    schedule = ReanalysisSchedule(every=4, warmup=2, unnamed_limit=6)
    masked = Occlusion(np.ones((112, 112), bool), ("face_mask",), 0.4)
    due = {7: [], 8: []}
    for frame in range(14):
        for track, named in ((7, True), (8, False)):
            face = Face(np.zeros(4, np.float32), 0.9, np.zeros((5, 2), np.float32), track_id=track,
                        track_named=named)
            if schedule.carry("cam", frame, face):
                assert face.occlusion is masked
            else:
                due[track].append(frame)
                face.occlusion = masked
                schedule.done("cam", frame, face)
    assert due[7] == [0, 1, 5, 9, 13]  # the warm-up frames, then every 4
    assert due[8] == [0, 1, 2, 3, 4, 5, 9, 13]  # nameless: every frame, up to 6 analyses
    unconfirmed = Face(np.zeros(4, np.float32), 0.9, np.zeros((5, 2), np.float32))
    assert not schedule.carry("cam", 3, unconfirmed)  # a tentative face is always analysed


def test_bench_writes_its_report_with_the_baseline_ratio_and_latency_per_stage(tmp_path):
    out = tmp_path / "bench"
    result = run_cli("bench", "--only", "decode", "stages", "streams", "capacity", "--streams", "2",
                     "--multi-faces", "2", "--size", "640x400", "--frames", "8", "--batch-sizes", "1", "2",
                     "--capacity-size", "640x400", "--capacity-fps", "5", "--capacity-seconds", "2",
                     "--max-streams", "1", "--out", str(out), timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "bench.json").read_text())
    cases = {c["kind"]: c for c in report["cases"] if c["section"] == "streams"}
    ours, base = cases["pipeline"]["result"], cases["baseline"]["result"]
    assert ours["frames"] == base["frames"] == 2 * 8  # the same frames through both
    assert ours["fps"] > 0 and base["fps"] > 0 and base["faces"] > 0
    latency = ours["latency_ms"]
    for stage in ("queue", "detect", "track", "occlusion", "embed", "identify", "emit", "render", "total"):
        assert latency[stage]["p50"] <= latency[stage]["p95"] <= latency[stage]["p99"], stage
    assert latency["total"]["p50"] >= latency["detect"]["p50"]
    assert ours["peak_rss_mb"] > 100 and report["decode"]["bare_fps"] > 0
    assert set(report["stages"]["batches"]) == {"1", "2"} and report["stages"]["faces_found"] > 0
    capacity = report["capacity"]
    assert capacity["streams_held"] in (0, 1) and "1" in capacity["tried"]
    text = (out / "bench.md").read_text()
    assert "streamer / baseline" in text and "Real-time capacity" in text
    ratio = round(ours["fps"] / base["fps"], 2)
    assert f"**{ratio:.2f}×**" in text
    for name in ("fps_vs_streams.png", "latency_vs_load.png", "time_per_stage.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_bench_names_a_clip_it_cannot_read(tmp_path):
    bad = tmp_path / "notavideo.mp4"
    bad.write_text("hello")
    result = run_cli("bench", "--clip", str(bad), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "notavideo.mp4" in result.stderr
    assert not (tmp_path / "out" / "bench.json").exists()


def test_a_failing_case_is_reported_and_the_bench_goes_on(tmp_path):
    broken = tmp_path / "broken-detector.onnx"
    broken.write_bytes(b"not a model")  # passes the config check (the file exists), fails in the worker
    config = tmp_path / "bench.yaml"
    config.write_text(f"detector:\n  backend: scrfd\n  model: {broken}\n")
    out = tmp_path / "out"
    result = run_cli("bench", "--config", str(config), "--only", "decode", "streams", "--streams", "1", "--multi-faces",
                     "1", "--size", "320x240", "--frames", "4", "--no-baseline", "--out", str(out), timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "broken-detector.onnx" in result.stderr
    report = json.loads((out / "bench.json").read_text())
    assert report["decode"]["bare_fps"] > 0  # measured before the failure, and kept
    failed = [c for c in report["cases"] if c["error"]]
    assert [c["kind"] for c in failed] == ["pipeline"] and report["failures"] == [failed[0]["error"]]
    assert "## Failed cases" in (out / "bench.md").read_text()


def test_the_capacity_search_from_a_first_guess_finds_the_most_streams_held(monkeypatch, tmp_path):
    """The search on its own (each try's run faked: held up to 40 streams), from 1 and from a GPU's first guess of
    16, and from a guess above what is held."""
    from streamer.bench import suite as bench_suite
    from streamer.bench.inputs import Clip

    monkeypatch.setattr(bench_suite, "demo_clip", lambda *a, **k: Clip("fake", tmp_path / "x.mp4", 8, 8, 25, 25))

    def search(start: int) -> tuple[int, list[int]]:
        plan = bench_suite.BenchPlan(config={}, config_label="", out=tmp_path, max_streams=128, capacity_start=start)
        suite = bench_suite.Suite(plan, say=lambda line: None)
        tried = []

        def fake_case(kind, clip, section, streams=1, **extra):
            tried.append(streams)
            names = [f"cam{i}" for i in range(streams)]
            dropped = {name: 0 if streams <= 40 else 10 for name in names}
            result = {"stream_fps": dict.fromkeys(names, 25.0), "dropped": dropped, "errors": [],
                      "latency_ms": {"total": {"p99": 80.0}}}
            return {"result": result, "error": None}

        suite._case = fake_case
        return suite._capacity(tmp_path)["streams_held"], tried

    assert search(1) == (40, [1, 2, 4, 8, 16, 32, 64, 48, 40, 44])
    assert search(16) == (40, [16, 32, 64, 48, 40, 44])
    held, tried = search(64)
    assert tried[0] == 64 and held in (32, 40) and len(tried) == 4  # below the guess: bisected down, 3 more tries
