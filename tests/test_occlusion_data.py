"""The occlusion data engine and its training command, on real face photos and occluder templates."""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest

from streamer.align import template
from streamer.datagen.compose import ComposeSettings, compose
from streamer.datagen.face_frame import FaceFrame
from streamer.datagen.occluders import CLASSES, OccluderLibrary
from tests.conftest import need_shared, run_cli


@pytest.fixture(scope="module")
def face():
    """A real face from the shared photos, aligned to 224 px, and its 5 points in the crop."""
    from engines import Device
    from streamer.datagen.occlusion_dataset import _aligned_face
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector

    model = need_shared("models", "scrfd_500m_bnkps.onnx")
    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=model, input_size=320), Device("cpu"))
    photo = sorted(need_shared("data", "masked_faces", "without_mask").iterdir())[0]
    return _aligned_face(photo, detector)


@pytest.fixture(scope="module")
def library():
    return OccluderLibrary(need_shared("data", "occluders"))


@pytest.mark.parametrize("name", CLASSES)
def test_every_class_lands_on_the_face_it_is_meant_to_cover(name, face, library):
    crop, landmarks = face
    rng = np.random.default_rng(3)
    skin = np.array([150, 170, 200], np.float32)
    layers = [library.draw(name, rng, FaceFrame(landmarks), 224, skin) for _ in range(8)]
    for layer in layers:
        assert layer.name == name and layer.mask.mean() > 0.003  # visible, not drawn off the crop
    # Where each kind sits, on average: eyewear over the eye line, caps above it, the rest below it.
    mean_y = np.mean([np.nonzero(layer.mask)[0].mean() for layer in layers])
    eye_y, mouth_y = landmarks[:2, 1].mean(), landmarks[3:, 1].mean()
    if name in ("sunglasses", "eyeglasses"):
        assert abs(mean_y - eye_y) < 0.25 * (mouth_y - eye_y)
    elif name == "cap":
        assert mean_y < eye_y
    elif name != "hand":
        assert mean_y > eye_y


def test_composed_pixels_differ_from_the_original_only_under_the_mask(face, library):
    crop, landmarks = face
    settings = ComposeSettings(clean_share=0.0, degrade_share=0.0)
    for seed in range(12):
        sample = compose(crop, landmarks, library, np.random.default_rng(seed), settings)
        assert np.array_equal(sample.original, crop)
        # Every changed pixel is declared: under an occluder's mask, or where one covers it partly (soft
        # edges, tinted lenses); what the masks call hidden is at least half covered.
        changed = np.abs(sample.occluded.astype(int) - crop.astype(int)).max(axis=2) > 8
        assert not (changed & (sample.coverage < 0.02)).any(), f"seed {seed}: undeclared pixels changed"
        assert (sample.coverage[sample.mask] > 0.45).all()
        if sample.instances:
            assert changed[sample.mask].mean() > 0.5
        for a in sample.instances:  # instances do not overlap: the later one hides the earlier
            for b in sample.instances:
                assert a is b or not (a.mask & b.mask).any()


def test_same_seed_same_sample_and_degradation_is_shared_by_the_pair(face, library):
    crop, landmarks = face
    settings = ComposeSettings(clean_share=0.0, degrade_share=1.0)
    a = compose(crop, landmarks, library, np.random.default_rng([7, 1]), settings)
    b = compose(crop, landmarks, library, np.random.default_rng([7, 1]), settings)
    assert np.array_equal(a.occluded, b.occluded) and np.array_equal(a.mask, b.mask)
    outside = cv2.dilate(a.mask.astype(np.uint8), np.ones((15, 15), np.uint8)) == 0
    # JPEG blocks and down-scaling spread the occluder a little; away from it the pair agrees.
    difference = np.abs(a.occluded.astype(int) - a.original.astype(int)).max(axis=2)
    assert np.percentile(difference[outside], 95) <= 12


def test_landmarks_follow_the_arcface_layout(face):
    _, landmarks = face
    assert np.abs(landmarks - template(224)).max() < 20


def test_dataset_cli_writes_yolo_and_pairs_split_by_photo(tmp_path):
    faces = need_shared("data", "masked_faces", "without_mask")
    out = tmp_path / "data"
    args = ["data", "occlusion", "--faces", str(faces), "--occluders", str(need_shared("data", "occluders")),
            "--detector-model", str(need_shared("models", "scrfd_500m_bnkps.onnx")), "--out", str(out),
            "--limit", "24", "--per-face", "2", "--seed", "5"]
    result = run_cli(*args, timeout=300)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    data_yaml = (out / "yolo" / "data.yaml").read_text()
    assert all(f"{i}: {name}" in data_yaml for i, name in enumerate(CLASSES))
    ids = {split: {p.stem.rsplit("_", 1)[0] for p in (out / "yolo" / "images" / split).glob("*.jpg")}
           for split in ("train", "val")}
    assert ids["train"] and ids["val"] and not ids["train"] & ids["val"]  # no photo in both
    assert manifest["samples"]["train"] + manifest["samples"]["val"] == 2 * sum(len(v) for v in ids.values())
    test_ids = {hashlib.sha1(key.encode()).hexdigest()[:12] for key in manifest["test_photos"]}
    assert test_ids and not test_ids & (ids["train"] | ids["val"])  # held-out photos are never written
    for label in (out / "yolo" / "labels" / "train").glob("*.txt"):
        for line in label.read_text().splitlines():
            values = line.split()
            assert 0 <= int(values[0]) < len(CLASSES) and len(values) >= 7 and len(values) % 2 == 1
            assert all(0.0 <= float(v) <= 1.0 for v in values[1:])
    first = sorted((out / "pairs" / "train").glob("*_mask.png"))[0]
    assert cv2.imread(str(first), cv2.IMREAD_GRAYSCALE).shape == (224, 224)
    # The same seed rebuilds the same dataset.
    again = tmp_path / "again"
    assert run_cli(*[a if a != str(out) else str(again) for a in args], timeout=300).returncode == 0
    name = sorted((out / "yolo" / "images" / "train").glob("*.jpg"))[0].name
    assert (out / "yolo" / "labels" / "train" / name.replace(".jpg", ".txt")).read_text() == (
        again / "yolo" / "labels" / "train" / name.replace(".jpg", ".txt")).read_text()

    # And a model trains on it offline, and the occlusion stage loads what it wrote.
    run = tmp_path / "run"
    result = run_cli("train", "occlusion", "--data", str(out / "yolo" / "data.yaml"), "--out", str(run),
                     "--epochs", "1", "--batch", "8", "--workers", "0", timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "epoch 1/1: mask mAP50" in result.stdout  # progress, one line per epoch
    from engines import Device
    from streamer.occlusion.yolo_seg import YoloSegConfig, YoloSegSegmenter
    from streamer.records import AlignedCrop

    segmenter = YoloSegSegmenter(YoloSegConfig(backend="yolo_seg", model=run / "occluders-yolo-seg.pt"), Device("cpu"))
    crops = [AlignedCrop(cv2.resize(cv2.imread(str(first).replace("_mask", "_occluded")), (112, 112)),
                         np.eye(2, 3, dtype=np.float32))]
    [occlusion] = segmenter.segment(crops)
    assert occlusion.mask.shape == (112, 112)


def test_dataset_cli_names_a_missing_detector_model(tmp_path):
    result = run_cli("data", "occlusion", "--faces", str(tmp_path), "--detector-model", str(tmp_path / "none.onnx"),
                     "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --detector-model") and "none.onnx" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
