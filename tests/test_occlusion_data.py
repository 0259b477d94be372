"""The occlusion data engine and its training command, on real face photos and occluder templates."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from streamer.align import template
from streamer.datagen.compose import ComposeSettings, compose
from streamer.datagen.face_bank import FaceBank, split_of
from streamer.datagen.face_frame import FaceFrame
from streamer.datagen.occluders import CLASSES, OccluderLibrary
from tests.conftest import need_shared, run_cli


@pytest.fixture(scope="module")
def bank_folder(tmp_path_factory):
    """A face bank built by the CLI from 40 real photos (linked under their own folder name, so their
    keys and splits are those of the full set)."""
    photos = sorted(need_shared("data", "masked_faces", "without_mask").iterdir())[:40]
    model = need_shared("models", "scrfd_500m_bnkps.onnx")
    root = tmp_path_factory.mktemp("photos") / "without_mask"
    root.mkdir()
    for photo in photos:
        (root / photo.name).symlink_to(photo)
    bank = tmp_path_factory.mktemp("bank")
    result = run_cli("data", "faces", "--faces", str(root), "--detector-model", str(model), "--out", str(bank))
    assert result.returncode == 0, result.stderr
    assert "face bank:" in result.stdout
    return bank


@pytest.fixture(scope="module")
def face(bank_folder):
    """A real face from the bank: aligned to 224 px, and its 5 points in the crop."""
    first = FaceBank(bank_folder).split("train")[0]
    return first.image(), first.landmarks


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


def test_face_bank_splits_by_photo_and_keeps_every_split(bank_folder):
    bank = FaceBank(bank_folder)
    assert len(bank.faces) >= 36  # 40 photos, a few without a detectable face at most
    root = need_shared("data", "masked_faces", "without_mask")
    for face in bank.faces:
        assert face.split == split_of(root / face.key.split("/", 1)[1], root)
        assert face.path.is_file() and face.image().shape == (224, 224, 3)
    assert {f.split for f in bank.faces} == {"train", "val", "test"}


def test_dataset_cli_writes_yolo_and_pairs_split_by_photo(bank_folder, tmp_path):
    out = tmp_path / "data"
    args = ["data", "occlusion", "--bank", str(bank_folder), "--occluders", str(need_shared("data", "occluders")),
            "--out", str(out), "--per-face", "2", "--seed", "5"]
    result = run_cli(*args, "--workers", "2", timeout=300)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    data_yaml = (out / "yolo" / "data.yaml").read_text()
    assert all(f"{i}: {name}" in data_yaml for i, name in enumerate(CLASSES))
    ids = {split: {p.stem.rsplit("_", 1)[0] for p in (out / "yolo" / "images" / split).glob("*.jpg")}
           for split in ("train", "val")}
    bank = FaceBank(bank_folder)
    assert ids["train"] == {f.id for f in bank.split("train")} and ids["val"] == {f.id for f in bank.split("val")}
    assert not {f.id for f in bank.split("test")} & (ids["train"] | ids["val"])  # held-out faces never written
    assert manifest["samples"]["train"] + manifest["samples"]["val"] == 2 * sum(len(v) for v in ids.values())
    for label in (out / "yolo" / "labels" / "train").glob("*.txt"):
        for line in label.read_text().splitlines():
            values = line.split()
            assert 0 <= int(values[0]) < len(CLASSES) and len(values) >= 7 and len(values) % 2 == 1
            assert all(0.0 <= float(v) <= 1.0 for v in values[1:])
    first = sorted((out / "pairs" / "train").glob("*_mask.png"))[0]
    assert cv2.imread(str(first), cv2.IMREAD_GRAYSCALE).shape == (224, 224)
    # The same seed rebuilds the same dataset, in one process as in two.
    again = tmp_path / "again"
    assert run_cli(*[a if a != str(out) else str(again) for a in args], "--workers", "1").returncode == 0
    for label in sorted((out / "yolo" / "labels" / "train").glob("*.txt")):
        assert label.read_text() == (again / "yolo" / "labels" / "train" / label.name).read_text()

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
    # Exported as the stage runs it by default: ONNX, no ultralytics at run time.
    exported = YoloSegSegmenter(YoloSegConfig(backend="yolo_seg", model=run / "occluders-yolo-seg.onnx"),
                                Device("cpu"))
    assert "ultralytics" not in exported.description and exported.class_names == tuple(CLASSES)


def test_real_labelled_faces_join_the_dataset_with_their_own_pixels(face_bank, tmp_path):
    out = tmp_path / "data"
    result = run_cli("data", "occlusion", "--bank", str(face_bank), "--out", str(out), "--limit", "40",
                     "--per-face", "1", "--no-pairs", "--workers", "1",
                     "--labelled", f"maskedfacenet={need_shared('data', 'faces_train', 'maskedfacenet_seg_256')}",
                     "--detector-model", str(need_shared("models", "scrfd_500m_bnkps.onnx")))
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["labelled"] == ["maskedfacenet"]
    real = {split: sorted((out / "yolo" / "labels" / split).glob("real_*.txt")) for split in ("train", "val")}
    # The first 40 of MaskedFace-Net's training/ photos (split train / val by a hash, nearly all with a face
    # found); testing/ is held out for the evaluation.
    assert len(real["train"]) + len(real["val"]) >= 38 and real["val"] and len(real["train"]) > 25
    assert all(name.stem.startswith("real_") for name in real["train"])
    assert manifest["instances"]["train"]["(real)"] == len(real["train"])
    for label in real["train"][:20]:
        lines = label.read_text().splitlines()
        assert lines and all(line.split()[0] == str(CLASSES.index("face_mask")) for line in lines), label


def test_bad_data_arguments_get_one_line_naming_them(tmp_path):
    result = run_cli("data", "faces", "--faces", str(tmp_path), "--detector-model", str(tmp_path / "none.onnx"),
                     "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --detector-model") and "none.onnx" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = run_cli("data", "occlusion", "--bank", str(tmp_path), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "not a face bank" in result.stderr and str(tmp_path) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
