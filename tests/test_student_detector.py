"""The occlusion-robust student detector: training without labels, its ONNX export, and the stream's use."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from engines import Device
from engines.onnx_torch import OnnxGraph
from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
from tests.conftest import need_shared, run_cli


@pytest.fixture(scope="module")
def teacher():
    return need_shared("models", "scrfd_2.5g_bnkps.onnx")  # a dynamic input (500MF's export takes 640 px only)


@pytest.fixture(scope="module")
def trained(face_bank, teacher, tmp_path_factory):
    """A student trained for one short epoch through the CLI, then resumed for a second, then asked to go on with
    other canvases."""
    out = tmp_path_factory.mktemp("detector")
    args = ["train", "detector", "--teacher", str(teacher), "--faces", str(face_bank), "--occluders",
            str(need_shared("data", "occluders")), "--out", str(out), "--batch", "4", "--limit", "8",
            "--canvas", "160", "--workers", "0", "--log-every", "1"]
    first = run_cli(*args, "--epochs", "1", timeout=300)
    again = run_cli(*args, "--epochs", "1", timeout=60)
    resumed = run_cli(*args, "--epochs", "2", "--resume", timeout=300)
    other_canvases = run_cli(*args, "--epochs", "3", "--resume", "--occluders-alone", "0.5", timeout=120)
    return out, first, again, resumed, other_canvases


def test_training_writes_a_detector_the_stream_loads_and_resumes(trained, teacher):
    out, first, again, resumed, other_canvases = trained
    assert first.returncode == 0, first.stderr[-2000:]
    assert "occluded faces found at 0.5" in first.stdout and "ONNX Runtime vs torch" in first.stdout
    # A finished run is never started over by mistake.
    assert again.returncode == 2 and again.stderr.startswith("error: --out:"), again.stderr[-500:]
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed" in resumed.stdout and "epoch 2:" in resumed.stdout
    history = json.loads((out / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    # Going on with canvases of another kind would write a recipe it was not trained by: refused, nothing touched.
    assert other_canvases.returncode == 2 and other_canvases.stderr.startswith("error: --resume:"), \
        other_canvases.stderr[-500:]
    assert "--occluders-alone 0;" in other_canvases.stderr
    assert 0 < history["teacher_on_validation"]["found"] <= 1
    # The stream's own SCRFD backend loads it and finds the face of a real photo, with its 5 points.
    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=out / "detector.onnx"), Device("cpu"))
    found = detector.detect(cv2.imread(str(_photo())))
    assert len(found) >= 1 and found.landmarks.shape[1:] == (5, 2)


def test_the_head_maps_are_the_outputs_before_their_layout(teacher):
    """The maps the loss reads are what the detector decodes: laid out as the ONNX outputs (cells x anchors),
    scores through the sigmoid, they equal the graph's outputs."""
    from streamer.train.detector_heads import ScrfdHeads, teacher_heads

    heads = teacher_heads(teacher, 160)
    assert isinstance(heads, ScrfdHeads) and heads.backend == "scrfd"
    net = OnnxGraph(teacher).eval()
    inputs = heads.to_input(cv2.resize(cv2.imread(str(_photo())), (160, 160)))[None]
    with torch.no_grad():
        outputs = net(inputs)
        _, maps = net.features(inputs, heads.names)
    for index, (output, flat) in enumerate(zip(outputs, heads.as_outputs(maps, 0))):
        assert np.allclose(flat, output.reshape(flat.shape).numpy(), atol=1e-5), index


def test_yunet_heads_decode_as_opencv_does():
    """The maps of YuNet's graph rebuilt in torch, decoded as the training's validation decodes them, give the faces,
    scores and 5 points OpenCV's own FaceDetectorYN gives on the same photo."""
    from streamer.train.detector_heads import YunetHeads, teacher_heads

    path = need_shared("models", "yunet_face_detection.onnx")
    heads = teacher_heads(path, 256)
    assert isinstance(heads, YunetHeads) and heads.backend == "yunet"
    image = cv2.resize(cv2.imread(str(_photo())), (256, 256))
    with torch.no_grad():
        _, maps = OnnxGraph(path).eval().features(heads.to_input(image)[None], heads.names)
    dets, points = heads.detect(maps, 0, (256, 256))
    opencv = cv2.FaceDetectorYN.create(str(path), "", (256, 256), heads.threshold, heads.nms_threshold, 5000)
    _, faces = opencv.detect(image)
    assert faces is not None and len(dets) == len(faces) >= 1
    x, y, w, h = faces[0, :4]
    assert np.allclose(dets[0], [x, y, x + w, y + h, faces[0, 14]], atol=1e-3)
    assert np.allclose(points[0].reshape(-1), faces[0, 4:14], atol=1e-3)


def test_a_student_of_yunet_is_trained_and_loaded_by_the_yunet_backend(face_bank, tmp_path):
    from streamer.detect.yunet import YunetConfig, YunetDetector

    out = tmp_path / "run"
    result = run_cli("train", "detector", "--teacher", str(need_shared("models", "yunet_face_detection.onnx")),
                     "--faces", str(face_bank), "--occluders", str(need_shared("data", "occluders")), "--out",
                     str(out), "--batch", "4", "--limit", "8", "--canvas", "160", "--workers", "0", "--epochs", "1",
                     timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "occluded faces found at 0.7" in result.stdout and "backend yunet" in result.stdout
    student = YunetDetector(YunetConfig(backend="yunet", model=out / "detector.onnx"), Device("cpu"))
    found = student.detect(cv2.imread(str(_photo())))
    assert len(found) >= 1 and found.landmarks.shape[1:] == (5, 2)
    # Caches of aligned faces key on the description: the teacher under the student's file name is another detector.
    (tmp_path / "teacher").mkdir()
    shutil.copy(need_shared("models", "yunet_face_detection.onnx"), tmp_path / "teacher" / "detector.onnx")
    teacher = YunetDetector(YunetConfig(backend="yunet", model=tmp_path / "teacher" / "detector.onnx"), Device("cpu"))
    assert student.description != teacher.description


def _photo():
    return sorted(need_shared("data", "faces", "identities").rglob("*.jpg"))[0]


def test_the_student_learns_to_score_occluded_faces_as_the_teacher_scores_them_clean(face_bank, teacher, tmp_path):
    """A handful of steps on one batch of canvases lower the distillation loss on those canvases: the student's
    score, box and points on the occluded face move towards the teacher's on the clean one."""
    from streamer.train.detector import DetectorTraining, _Run

    spec = DetectorTraining(teacher=teacher, faces=[face_bank], out=tmp_path,
                            occluders=need_shared("data", "occluders"), limit=8, batch=8, canvas=160, lr=3e-4,
                            workers=0)
    run = _Run(spec, progress=lambda line: None)
    seen, clean = (torch.stack(t) for t in zip(*[run.train_set[i] for i in range(8)]))
    with torch.no_grad():
        identical = run.distillation(run.maps(run.student, clean), run.maps(run.teacher, clean))
    assert all(abs(float(identical[k])) < 1e-4 for k in ("score", "box", "points"))  # a copy of the teacher
    before = run.loss(seen, clean)
    for _ in range(8):
        terms = run.loss(seen, clean)
        run.optimizer.zero_grad()
        terms["loss"].backward()
        run.optimizer.step()
    after = run.loss(seen, clean)
    assert float(after["loss"].detach()) < 0.8 * float(before["loss"].detach()), (before, after)


def test_bad_teachers_and_options_get_one_line(face_bank, tmp_path):
    common = ["train", "detector", "--out", str(tmp_path / "run")]
    embedder = need_shared("models", "mobilefacenet_128d.onnx")
    result = run_cli(*common, "--teacher", str(embedder), "--faces", str(face_bank), timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: --teacher:"), result.stderr[-500:]
    assert "SCRFD" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    scrfd = str(need_shared("models", "scrfd_2.5g_bnkps.onnx"))
    fixed = str(need_shared("models", "scrfd_500m_bnkps.onnx"))  # exported for 640 x 640 only
    for teacher, flag, value, says in ((scrfd, "--canvas", "100", "multiple of 32"),
                                       (scrfd, "--backgrounds", str(tmp_path), "no image"),
                                       (scrfd, "--occluders-alone", "1.5", "a share from 0 to 1"),
                                       (scrfd, "--surroundings", str(tmp_path), "no CelebAMask-HQ training photo"),
                                       (fixed, "--canvas", "256", "pass --canvas 640")):
        result = run_cli(*common, "--teacher", teacher, "--faces", str(face_bank), flag, value, timeout=120)
        assert result.returncode == 2 and result.stderr.startswith(f"error: {flag}:"), result.stderr[-500:]
        assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # nothing was started


def test_occluders_alone_put_occluders_on_scenes_with_no_face_under_them(face_bank):
    """``--occluders-alone``: the scene-alone canvases show occluders where a face would be, and no face; the canvas
    as seen and the one the teacher answers on are the same (a hand is not a face, whatever the teacher says of
    it)."""
    from streamer.datagen.face_bank import train_and_val
    from streamer.datagen.occluders import OccluderLibrary
    from streamer.train.detector_data import SeenAndCleanCanvases, read_backgrounds
    from streamer.train.detector_heads import yunet_input

    faces, _ = train_and_val([face_bank], "--faces", 8)
    scenes = read_backgrounds([need_shared("data", "video", "intel_preview_classroom.gif")], 160)
    library = OccluderLibrary(need_shared("data", "occluders"))
    plain, alone = (SeenAndCleanCanvases(faces, library, 160, 0, scenes, yunet_input, occluders_alone=share)
                    for share in (0.0, 1.0))
    changed = 0
    for index in range(80):
        scene, _, face = plain.canvases(index, 0)
        seen, clean, face_too = alone.canvases(index, 0)
        if face or face_too:
            continue
        assert np.array_equal(seen, clean)
        changed += int(not np.array_equal(seen, scene))
    assert changed >= 2, changed


def test_surroundings_are_what_is_around_a_portraits_face_and_become_scenes(face_bank, tmp_path):
    """``--surroundings``: each CelebAMask-HQ training photo gives its largest square with no pixel of the face
    (hair, clothes, what is behind), and those squares are scenes the faces are set in, and scenes alone."""
    from streamer.datagen.face_bank import train_and_val
    from streamer.datagen.labelled_faces import celeba_face_pixels, face_free_square
    from streamer.datagen.occluders import OccluderLibrary
    from streamer.train.detector_data import SeenAndCleanCanvases, read_surroundings
    from streamer.train.detector_heads import yunet_input

    celeba = need_shared("data", "faces_train", "celebamaskhq_256")
    for index in (0, 7, 4600):  # 4600: a test photo, never a scene
        for part, suffix in (("images", "jpg"), ("labels", "png")):
            (tmp_path / part).mkdir(exist_ok=True)
            (tmp_path / part / f"{index}.{suffix}").symlink_to(celeba / part / f"{index}.{suffix}")
    # Each pixel says where it is: a square's corner tells where it was cut from.
    where = np.zeros((256, 256, 3), np.uint8)
    where[..., 0], where[..., 1] = np.arange(256)[None, :], np.arange(256)[:, None]
    for index in (0, 7):
        square = face_free_square(celeba / "labels" / f"{index}.png", where)
        side, (x0, y0) = square.shape[0], square[0, 0, :2].astype(int)
        face = celeba_face_pixels(celeba / "labels" / f"{index}.png")
        assert side >= 48 and face.any() and not face[y0:y0 + side, x0:x0 + side].any(), (index, side)
        # The largest to a pixel (its side is odd): no square two pixels larger is free of the face anywhere.
        free = np.pad((~face).astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        n = side + 2
        assert (free[n:, n:] - free[:-n, n:] - free[n:, :-n] + free[:-n, :-n] < n * n).all(), index
    squares = read_surroundings(tmp_path)
    assert len(squares) == 2
    faces, _ = train_and_val([face_bank], "--faces", 8)
    canvases = SeenAndCleanCanvases(faces, OccluderLibrary(need_shared("data", "occluders")), 160, 0, [], yunet_input,
                                    surroundings=squares)
    enlarged = [cv2.resize(s, (160, 160), interpolation=cv2.INTER_LINEAR) for s in squares]
    scenes = enlarged + [e[:, ::-1] for e in enlarged]
    with_face = alone = 0
    for index in range(60):
        seen, clean, face = canvases.canvases(index, 0)
        assert seen.shape == clean.shape == (160, 160, 3)
        if face:
            with_face += 1
        else:  # the scene alone: one of the squares, enlarged (mirrored or not)
            alone += 1
            assert np.array_equal(seen, clean) and any(np.array_equal(seen, s) for s in scenes)
    assert alone >= 2 and with_face >= 30, (alone, with_face)
