"""A student of dlib's 5-point predictor that places the points under occluders where dlib places them on the face
clean, and the dlib student's chips cut by it."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from engines import Device
from streamer.errors import ConfigError, ModelError
from tests.conftest import need_shared, run_cli

pytest.importorskip("dlib")
pytest.importorskip("face_recognition_models")


@pytest.fixture(scope="module")
def trained_points(face_bank, tmp_path_factory):
    run = tmp_path_factory.mktemp("points") / "run"
    args = ["train", "points", "--faces", str(face_bank), "--occluders", str(need_shared("data", "occluders")),
            "--out", str(run), "--faces-per-bank", "24", "--variants", "2", "--trees", "15", "--oversampling", "2"]
    result = run_cli(*args, timeout=300)
    assert result.returncode == 0, result.stderr
    return run, args, result


def test_a_run_trains_a_five_point_predictor_reports_it_and_never_overwrites_it(trained_points):
    from streamer.embed.dlib_resnet import student_points
    from streamer.train.points import CONDITIONS, teacher_predictor

    run, args, result = trained_points
    assert "predictor:" in result.stdout and "face_mask" in result.stdout
    dlib, _ = teacher_predictor()
    assert student_points(dlib, run / "points.dat") is not None  # a dlib predictor of 5 points
    report = json.loads((run / "report.json").read_text())
    assert report["training_faces"] == 24 and set(report["validation"]) == set(CONDITIONS)
    assert set(report["validation"]["face_mask"]) == {"dlib", "student"}
    before = (run / "points.dat").read_bytes()
    again = run_cli(*args, timeout=120)
    assert again.returncode == 2 and again.stderr.startswith("error: --out:") and "points.dat" in again.stderr
    assert (run / "points.dat").read_bytes() == before


def test_a_face_moved_onto_the_layout_and_cut_there_gives_the_chip_the_stream_cuts(trained_points):
    """What `train embedder --points` shows the student is what the stream shows it: the layout's fixed cut of the
    moved face against the stream's cut of the face by the predictor's points."""
    from streamer.detect.dlib_detector import DLIB5_IN_ARCFACE_112, similarity_batch
    from streamer.embed.dlib_resnet import CHIP_POINTS, CHIP_PX, DlibEmbedderConfig, DlibResnetEmbedder, student_points
    from streamer.train.embedder_data import StreamCut

    embedder = DlibResnetEmbedder(DlibEmbedderConfig(backend="dlib", mirror=False, student=None), Device("cpu"))
    cut = StreamCut(trained_points[0] / "points.dat")
    files = [sorted(p.iterdir())[0] for p in sorted(need_shared("data", "faces_train", "glint24_112").iterdir())[:6]]
    crops = np.stack([cv2.resize(cv2.imread(str(f)), (168, 168)) for f in files])
    layout_cut = similarity_batch(DLIB5_IN_ARCFACE_112[None] * 1.5, CHIP_POINTS[None])[0]
    predictor = student_points(embedder._dlib, cut.seen_points)
    for seen, by_stream in zip(crops, embedder.chips(crops, predictor=predictor)):
        moved = cut.seen(seen)
        by_training = cv2.cvtColor(cv2.warpAffine(moved, layout_cut, (CHIP_PX, CHIP_PX), flags=cv2.INTER_LINEAR,
                                                  borderMode=cv2.BORDER_REPLICATE), cv2.COLOR_BGR2RGB)
        inner = (slice(20, -20), slice(20, -20))  # the two resamplings differ only at the chip's edge
        assert np.abs(by_training[inner].astype(int) - by_stream[inner].astype(int)).mean() < 3.0
        assert np.abs(moved.astype(int) - seen.astype(int)).mean() > 0  # the points moved it


def test_a_dlib_student_run_cuts_its_faces_by_the_points_it_is_given(trained_points, face_bank, tmp_path):
    from streamer.embed.dlib_resnet import descriptor_file
    from streamer.embed.student import check_student
    from streamer.model_files import fingerprint

    points = trained_points[0] / "points.dat"
    common = ["train", "embedder", "--faces", str(face_bank), "--limit", "8", "--batch", "4", "--epochs", "1",
              "--samples-per-epoch", "8", "--occluders", str(need_shared("data", "occluders"))]
    result = run_cli(*common, "--teacher", "dlib", "--points", str(points), "--out", str(tmp_path / "run"),
                     timeout=600)
    assert result.returncode == 0, result.stderr
    recipe = check_student(tmp_path / "run" / "student.onnx", fingerprint(descriptor_file()))
    assert recipe["points"] == {"file": "points.dat", "sha256_12": fingerprint(points)}
    # Run with other points than it was taught with (the default's shipped predictor, or dlib's own), it says so.
    from streamer.config import parse_config
    from streamer.embed import build_embedder

    student = str(tmp_path / "run" / "student.onnx")
    for setting, other in (("auto", "dlib-points-student.dat"), (None, "dlib's own predictor")):
        embedder = build_embedder(parse_config({"embedder": {"backend": "dlib", "student": student,
                                                             "student_points": setting}}).embedder, Device("cpu"))
        assert (f"student.onnx was taught with its chips cut by the points of points.dat (sha256 "
                f"{fingerprint(points)}...), here they are cut by {other}") in embedder.description
    embedder = build_embedder(parse_config({"embedder": {"backend": "dlib", "student": student,
                                                         "student_points": str(points)}}).embedder, Device("cpu"))
    assert "taught" not in embedder.description
    result = run_cli(*common, "--teacher", "dlib", "--out", str(tmp_path / "run"), "--resume", "--epochs", "2",
                     timeout=300)
    assert result.returncode == 2 and result.stderr.startswith("error: --resume:") and "--points" in result.stderr
    mobilefacenet = need_shared("models", "mobilefacenet_128d.onnx")
    result = run_cli(*common, "--teacher", str(mobilefacenet), "--points", str(points), "--out",
                     str(tmp_path / "other"), timeout=300)
    assert result.returncode == 2 and result.stderr.startswith("error: --points: only with --teacher dlib")
    result = run_cli(*common, "--teacher", "dlib", "--points", str(tmp_path / "none.dat"), "--out",
                     str(tmp_path / "other"), timeout=300)
    assert result.returncode == 2 and result.stderr.startswith("error: --points:") and "none.dat" in result.stderr
    assert not (tmp_path / "other").exists()


def test_bad_input_gets_one_line_naming_it(face_bank, tmp_path):
    common = ["train", "points", "--out", str(tmp_path / "run")]
    result = run_cli(*common, "--faces", str(tmp_path), timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: --faces:")
    assert len(result.stderr.splitlines()) == 1
    result = run_cli(*common, "--faces", str(face_bank), "--variants", "0", timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: --variants: 0")
    result = run_cli(*common, "--faces", str(face_bank), "--occluders", str(tmp_path / "none"), timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: --occluders:")
    (tmp_path / "a-file").write_text("kept")
    result = run_cli("train", "points", "--out", str(tmp_path / "a-file"), "--faces", str(face_bank), timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: --out:") and "is a file" in result.stderr
    assert (tmp_path / "a-file").read_text() == "kept"
    assert not (tmp_path / "run" / "points.dat").exists()


def test_the_setting_is_checked_before_anything_runs(tmp_path):
    from streamer.config import parse_config
    from streamer.embed import build_embedder

    with pytest.raises(ConfigError, match="student_points: a predictor is named but student is null"):
        parse_config({"embedder": {"backend": "dlib", "student": None, "student_points": __file__}})
    not_dlib = tmp_path / "points.dat"
    not_dlib.write_bytes(b"\0" * 64)
    config = parse_config({"embedder": {"backend": "dlib", "student_points": str(not_dlib)}})
    with pytest.raises(ModelError, match=f"embedder.student_points: {not_dlib} is not a dlib shape predictor"):
        build_embedder(config.embedder, Device("cpu"))
    import face_recognition_models

    # The package's 68-point model (non-commercial licence): refused by its bytes before dlib would read it, also
    # under another name.
    licensed = tmp_path / "my-points.dat"
    licensed.symlink_to(face_recognition_models.pose_predictor_model_location())
    config = parse_config({"embedder": {"backend": "dlib", "student_points": str(licensed)}})
    with pytest.raises(ModelError, match="is dlib's 68-point model, which streamer never loads"):
        build_embedder(config.embedder, Device("cpu"))
    config = parse_config({"embedder": {"backend": "dlib", "student_points": str(tmp_path)}})
    with pytest.raises(ModelError, match=f"embedder.student_points: {tmp_path} is not a file"):
        build_embedder(config.embedder, Device("cpu"))


@pytest.fixture(scope="module")
def masked_probes():
    """faces_eval photos (never trained on) aligned by the default detector, and the same crops under a face mask
    of the data engine with camera faults, aligned again by the detector as the stream aligns them."""
    from streamer.config import Config
    from streamer.datagen.occluders import OccluderLibrary
    from streamer.detect import align_most_confident, build_detector
    from streamer.eval.identity import probe_sample

    detector = build_detector(Config().detector, Device("cpu"))
    library = OccluderLibrary(need_shared("data", "occluders"))
    rows = []
    for k, person in enumerate(sorted(need_shared("data", "faces_eval", "celeba_identity_160").iterdir())[:120]):
        photo = align_most_confident(detector, cv2.imread(str(sorted(person.iterdir())[0])), 112)
        if photo is None:
            continue
        masked = probe_sample(photo[0].image, photo[1], "face_mask", k, library, seed=0)
        again = align_most_confident(detector, masked.occluded, 112)
        if again is not None:
            rows.append((photo[0].image, again[0].image, again[0].matrix))
    return rows


def test_the_shipped_student_puts_masked_faces_points_nearer_where_dlib_puts_them_clean(masked_probes):
    """The points a masked probe's chip is cut by, against those its photo's chip (the gallery's) is cut by."""
    from streamer.embed.dlib_resnet import SHIPPED_POINTS, crop_points, student_points
    from streamer.train.points import points_error, teacher_predictor

    dlib, teacher = teacher_predictor()
    student = student_points(dlib, "auto")
    errors = {"dlib": [], "student": []}
    rgb = lambda image: np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))  # noqa: E731
    for clean, probe, matrix in masked_probes:
        reference = crop_points(dlib, teacher, rgb(clean), 112)
        for name, predictor in (("dlib", teacher), ("student", student)):
            found = crop_points(dlib, predictor, rgb(probe), 112)
            errors[name].append(points_error(found, reference, matrix))
    median = {name: float(np.median(e)) for name, e in errors.items()}
    beyond = {name: float((np.asarray(e) > 0.15).mean()) for name, e in errors.items()}
    assert SHIPPED_POINTS.is_file() and len(masked_probes) >= 100
    # Measured on these 111 probes (2026-12-06, drawn as the eval draws them): median 0.085 -> 0.047 eye distances,
    # beyond 0.15: 21.6% -> 12.6%
    assert median["student"] <= 0.8 * median["dlib"], median
    assert beyond["student"] <= beyond["dlib"] - 0.05, beyond


def test_the_default_cuts_the_students_chips_by_the_shipped_points_and_dlibs_own_elsewhere():
    from streamer.config import parse_config
    from streamer.embed import build_embedder

    embedder = build_embedder(parse_config({}).embedder, Device("cpu"))
    assert "its chips cut by the points of dlib-points-student.dat" in embedder.description
    crops = np.stack([cv2.resize(cv2.imread(str(sorted(p.iterdir())[0])), (112, 112)) for p in
                      sorted(need_shared("data", "faces_train", "glint24_112").iterdir())[:4]])
    plain = build_embedder(parse_config({"embedder": {"backend": "dlib", "student_points": None}}).embedder,
                           Device("cpu"))
    assert "chips cut by" not in plain.description
    # The gallery (dlib's own descriptors) is the same either way; the student's probes differ a little.
    assert np.allclose(embedder.embed(crops), plain.embed(crops), atol=1e-6)
    difference = np.abs(embedder.student.embed(crops) - plain.student.embed(crops)).max()
    assert 0 < difference < 0.5
