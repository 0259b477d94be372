"""Issue 16: the occluder model's precision gate, whole-occluder masks, and the real labelled occluder pixels it is
trained and judged on."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.occlusion.gate import ClassGate, OccluderGate, gate_file
from streamer.occlusion.region import face_region
from streamer.records import OccluderInstance
from tests.conftest import need_shared, run_cli

SHIPPED = gate_file(__import__("streamer.occlusion.yolo_seg", fromlist=["DEFAULT_MODEL"]).DEFAULT_MODEL)


def _disc(centre, radius, size=112):
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, centre, radius, 1, -1)
    return mask.astype(bool)


def test_the_gate_keeps_a_certain_occluder_whole_and_drops_an_uncertain_or_off_face_one():
    gate = OccluderGate({"face_mask": ClassGate(confidence=0.5, min_face_share=0.05),
                         "phone": ClassGate(confidence=0.8)}, floor=0.25)
    # A face mask reaching below the chin, past the face ellipse: its rim is part of the mask to inpaint.
    mask = np.zeros((112, 112), bool)
    mask[70:112, 15:97] = True
    region = face_region(112)
    assert (mask & ~region).sum() > 500
    occlusion = gate.occlusion([OccluderInstance("face_mask", 0.6, mask)], 112)
    assert occlusion.classes == ("face_mask",)
    assert (occlusion.mask == mask).all()  # whole, not clipped to the face area
    assert occlusion.fraction == pytest.approx((mask & region).sum() / region.sum())

    unsure = gate.occlusion([OccluderInstance("face_mask", 0.45, mask)], 112)
    assert not unsure.occluded and not unsure.mask.any() and unsure.fraction == 0
    sliver = _disc((60, 70), 3)  # certain, but too small a share of the face
    assert not gate.occlusion([OccluderInstance("face_mask", 0.9, sliver)], 112).occluded
    off_face = _disc((4, 4), 4)  # in the crop's corner, on hair or background: not over the face at all
    assert not gate.occlusion([OccluderInstance("hand", 0.99, off_face)], 112).occluded
    phone = _disc((90, 60), 12)
    assert not gate.occlusion([OccluderInstance("phone", 0.7, phone)], 112).occluded  # its class asks for 0.8
    assert gate.occlusion([OccluderInstance("hand", 0.3, phone)], 112).classes == ("hand",)  # unlisted: the floor
    assert not gate.occlusion([OccluderInstance("hand", 0.2, phone)], 112).occluded  # never below the floor


def test_a_sure_face_mask_passes_at_any_share_of_the_face_and_an_unsure_one_must_cover_more():
    """A face mask worn under the chin covers 6-8% of the face area; an unsure sliver of that size is what a clear
    face gets. The gate's ``sure`` tier tells them apart by confidence."""
    gate = OccluderGate({"face_mask": ClassGate(confidence=0.15, min_face_share=0.08, sure=0.65)}, floor=0.15)
    chin = np.zeros((112, 112), bool)
    chin[100:110, 34:78] = True
    share = float((chin & face_region(112)).sum() / face_region(112).sum())
    assert 0 < share < 0.08
    assert gate.occlusion([OccluderInstance("face_mask", 0.8, chin)], 112).classes == ("face_mask",)
    assert not gate.occlusion([OccluderInstance("face_mask", 0.5, chin)], 112).occluded
    with pytest.raises(ValueError, match="sure"):
        ClassGate(confidence=0.5, sure=0.3)


def test_the_gate_search_fires_where_the_gate_itself_keeps_an_occluder():
    """choose_gate scores thousands of gates on arrays; each must keep exactly what OccluderGate.passes keeps."""
    from streamer.eval.occlusion import _fires, _scored, _share

    rng = np.random.default_rng(0)
    found = [[OccluderInstance("face_mask", float(rng.uniform(0.1, 0.95)), _disc(tuple(rng.integers(0, 112, 2)),
                                                                                 int(rng.integers(2, 40))))
              for _ in range(rng.integers(0, 3))] for _ in range(200)]
    scored = _scored(found, "face_mask")
    for confidence, share, sure in [(0.15, 0.08, 0.65), (0.3, 0.0, None), (0.5, 0.12, None), (0.2, 0.05, 0.5)]:
        gate = OccluderGate({"face_mask": ClassGate(confidence=confidence, min_face_share=share, sure=sure)}, 0.1)
        kept = [any(gate.passes(i, _share(i.mask)) for i in instances) for instances in found]
        assert list(_fires(scored, confidence, share, sure)) == kept
        assert 0 < sum(kept) < len(found)


def test_a_sure_tier_is_chosen_where_it_finds_more_and_a_class_with_nothing_to_find_keeps_its_shipped_gate():
    from streamer.eval.occlusion import EvalFace, choose_gate

    crop, face, chin = np.zeros((112, 112, 3), np.uint8), _disc((56, 70), 30), np.zeros((112, 112), bool)
    chin[100:110, 34:78] = True
    clear = [EvalFace("celebamaskhq", f"c{k}", "val", crop, {}) for k in range(400)]
    masked = [EvalFace("maskedfacenet", f"m{k}", "val", crop, {"face_mask": face}) for k in range(10)]
    found = [[OccluderInstance("face_mask", 0.4, chin), OccluderInstance("hand", 0.3, face)] if k < 2 else []
             for k in range(400)]  # unsure chin slivers on two clear faces, an unsure hand on two
    found += [[OccluderInstance("face_mask", 0.7, face if k < 6 else chin)] for k in range(10)]  # 4 under the chin
    shipped = {"hand": ClassGate(confidence=0.5)}
    chosen = choose_gate(clear + masked, found, ("face_mask", "hand"), floor=0.15, shipped=shipped)
    assert chosen["face_mask"]["val_found"] == 1.0 and chosen["face_mask"]["val_false_faces"] == 0
    assert chosen["face_mask"]["sure"] == 0.7  # the strictest that still takes the chin masks (0.7)
    assert chosen["face_mask"]["min_face_share"] > 0.03
    assert chosen["hand"]["confidence"] == 0.5  # 0.35 would keep clear faces clear too, but finds nothing measured
    loose = choose_gate(clear + masked, found, ("hand",), floor=0.15)["hand"]
    assert loose["confidence"] == 0.35 and "sure" not in loose


def test_an_anchor_is_a_candidate_for_every_class_it_scores_above_the_floor_not_only_its_best():
    """A dark face mask the model calls 0.5 scarf and 0.3 face mask is a face mask candidate too: the gate, chosen
    on real faces, decides which to keep."""
    from streamer.occlusion.yolo_seg import candidates

    classes, coefficients = 3, 2
    prediction = np.zeros((4 + classes + coefficients, 3), np.float32)
    prediction[:4] = [[50, 20, 80], [60, 30, 80], [40, 10, 10], [30, 10, 10]]  # centre x, y, width, height
    prediction[4:4 + classes, 0] = [0.3, 0.5, 0.0]  # anchor 0: face mask 0.3, scarf 0.5
    prediction[4:4 + classes, 1] = [0.1, 0.0, 0.9]  # anchor 1: only class 2 is above the floor
    prediction[4:4 + classes, 2] = [0.1, 0.1, 0.1]  # anchor 2: nothing is
    boxes, scores, kinds, _ = candidates(prediction, classes, confidence=0.2)
    assert kinds.tolist() == [2, 1, 0] and np.allclose(scores, [0.9, 0.5, 0.3])  # best first
    assert np.allclose(boxes[1], [30, 45, 70, 75]) and np.allclose(boxes[1], boxes[2])  # one anchor, two classes


def test_of_gates_finding_as_many_masks_on_val_the_one_firing_on_fewer_clear_faces_is_chosen():
    """At 0.3 the model finds no more masks than at 0.35 but fires on a clear face: the gate is the loosest that
    fires on none, though the budget (one clear face in four hundred) would allow that one false face."""
    from streamer.eval.occlusion import EvalFace, choose_gate

    crop, face = np.zeros((112, 112, 3), np.uint8), _disc((56, 70), 30)
    clear = [EvalFace("celebamaskhq", f"c{k}", "val", crop, {}) for k in range(400)]
    masked = [EvalFace("with_mask", f"m{k}", "val", crop, None) for k in range(10)]
    found = [[OccluderInstance("face_mask", 0.3, face)] if k == 0 else [] for k in range(400)]
    found += [[OccluderInstance("face_mask", 0.6 if k < 8 else 0.1, face)] for k in range(10)]
    chosen = choose_gate(clear + masked, found, ("face_mask",), floor=0.15)["face_mask"]
    assert chosen["val_found"] == 0.8 and chosen["val_false_faces"] == 0
    assert chosen["confidence"] == 0.35 and chosen["min_face_share"] == 0.0  # the loosest that fires on none


def test_face_masks_are_found_on_the_real_masked_photos_held_out(cpu):
    """The masked photos' test split (never trained on; its val split chose the gate): SCRFD-aligned as the
    stream aligns them, a face mask is named on 94.6% (AIZOO's classifier: 92.8%; one class per anchor and the
    first gate: 90.4%). Asserted with a margin for another CPU's rounding."""
    from streamer.datagen.face_bank import split_of
    from streamer.detect import align_most_confident
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
    from streamer.occlusion import YoloSegConfig, build_segmenter

    folder = need_shared("data", "masked_faces", "with_mask")
    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=need_shared("models", "scrfd_2.5g_bnkps.onnx"),
                                         input_size=320), cpu)  # as streamer eval occlusion aligns them
    segmenter = build_segmenter(YoloSegConfig(), cpu)
    crops = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        if split_of(path, folder) == "test":
            aligned = align_most_confident(detector, cv2.imread(str(path)), 112)
            if aligned is not None:
                crops.append(aligned[0])  # as the stream hands it: with the pixels beyond the photo's edge
    assert len(crops) >= 200
    # These are tight photos: most crops reach past the edge, and a mask cut by it is still found.
    assert sum(c.outside is not None for c in crops) > len(crops) / 2
    found = [("face_mask" in o.classes) for o in segmenter.segment(crops)]
    assert np.mean(found) >= 0.93, f"face mask found on {np.mean(found):.1%} of {len(crops)} masked faces"


def test_an_occluder_seen_only_on_the_streaks_beyond_a_photos_edge_is_no_occluder(cpu):
    """A real unmasked photo whose face reaches the photo's edge: the crop's pixels past it are the edge replicated
    into streaks, and the model finds a phone there. What the camera saw is a clear face: it keeps its pixels."""
    from streamer.detect import align_most_confident
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
    from streamer.occlusion import YoloSegConfig, build_segmenter
    from streamer.records import AlignedCrop

    photo = need_shared("data", "masked_faces", "without_mask", "1_0_fanshiqi_0106.jpg")
    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=need_shared("models", "scrfd_2.5g_bnkps.onnx"),
                                         input_size=320), cpu)
    segmenter = build_segmenter(YoloSegConfig(), cpu)
    crop = align_most_confident(detector, cv2.imread(str(photo)), 112)[0]
    assert crop.outside is not None and crop.outside.mean() > 0.1
    as_if_inside = segmenter.segment([AlignedCrop(crop.image, crop.matrix)])[0]
    assert "phone" in as_if_inside.classes and (as_if_inside.mask & crop.outside).sum() > as_if_inside.mask.sum() / 2
    seen = segmenter.segment([crop])[0]
    assert not seen.occluded and not seen.mask.any(), seen.classes


def test_faces_seen_wearing_an_occluder_are_not_clear_faces_and_every_one_seen_is_in_the_data():
    """occluders_seen.json: real caps, glasses, hands and microphones a person saw on the unmasked photos and on
    CelebAMask-HQ faces without occluder labels. Such a face is not counted as a clear face given synthetic
    pixels, nor used as one when a gate is chosen."""
    from streamer.datagen.occluders import CLASSES
    from streamer.eval import occlusion as ev

    data = json.loads(ev.SEEN_FILE.read_text())
    assert data["worn"]["without_mask"] and data["worn"]["celebamaskhq"]
    for kind, faces in [*data["worn"].items(), *data["unsure"].items()]:
        folder = need_shared("data", "masked_faces", kind) if kind == "without_mask" else \
            need_shared("data", "faces_train", "celebamaskhq_256", "images")
        for key, what in faces.items():
            assert (folder / Path(key).name).is_file(), key
            assert isinstance(what, str) or set(what) <= set(CLASSES), (key, what)
    capped = next(k for k, v in data["worn"]["without_mask"].items() if v == ["cap"])
    crop = np.zeros((112, 112, 3), np.uint8)
    cap = np.zeros((112, 112), bool)
    cap[:40] = True
    faces = [ev.EvalFace("without_mask", capped, "test", crop, None),
             ev.EvalFace("without_mask", "x.jpg", "test", crop, None)]
    found = [[OccluderInstance("cap", 0.9, cap)], []]
    rows = ev.measure(faces, found, OccluderGate({}, 0.25), 0.05)
    assert rows["without_mask"]["faces"] == 1 and rows["without_mask"]["synthetic"] == 0
    assert rows["seen_worn"]["faces"] == 1 and rows["seen_worn"]["found"] == 1


def test_the_shipped_model_has_a_gate_chosen_on_validation_faces(cpu):
    from streamer.occlusion import YoloSegConfig, build_segmenter

    chosen = json.loads(SHIPPED.read_text())
    segmenter = build_segmenter(YoloSegConfig(), cpu)
    assert set(chosen["classes"]) == set(segmenter.class_names)
    assert chosen["chosen_on"]["val_faces"] and chosen["model"] == "occluders-yolo11n-seg.onnx"
    for name, gate in chosen["classes"].items():
        assert segmenter.gate.classes[name].confidence == gate["confidence"] >= YoloSegConfig().confidence, name
        assert segmenter.gate.classes[name].min_face_share == gate["min_face_share"], name
        assert segmenter.gate.classes[name].sure == gate.get("sure"), name
    assert segmenter.gate.classes["face_mask"].sure is not None  # masks worn under the chin (MaskedFace-Net val)
    assert "; gate " in segmenter.description and "face_mask 0." in segmenter.description


def test_a_config_gate_overrides_one_class_and_an_unknown_class_is_named(cpu):
    from streamer.config import parse_config
    from streamer.errors import ConfigError
    from streamer.occlusion import build_segmenter

    config = parse_config({"occlusion": {"backend": "yolo_seg", "gate": {"hand": {"confidence": 0.9}}}})
    segmenter = build_segmenter(config.occlusion, cpu)
    assert segmenter.gate.classes["hand"].confidence == 0.9
    assert segmenter.gate.classes["face_mask"].confidence == json.loads(SHIPPED.read_text())["classes"][
        "face_mask"]["confidence"]
    bad = parse_config({"occlusion": {"backend": "yolo_seg", "gate": {"helmet": {"confidence": 0.5}}}})
    with pytest.raises(ConfigError, match=r"occlusion\.gate\.helmet: .* has no class 'helmet'"):
        build_segmenter(bad.occlusion, cpu)


@pytest.mark.shared_models
def test_labelled_sets_read_real_occluder_pixels_aligned_with_their_faces():
    from engines import Device
    from streamer.datagen.labelled_faces import labelled_faces, labelled_photos
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector

    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=need_shared("models", "scrfd_500m_bnkps.onnx"),
                                         input_size=320), Device("cpu"))
    masked = labelled_photos("maskedfacenet", need_shared("data", "faces_train", "maskedfacenet_seg_256"))
    assert {p.split for p in masked} == {"train", "val", "test"} and sum(p.split == "test" for p in masked) == 50
    faces = list(labelled_faces("maskedfacenet", [p for p in masked if p.split == "test"][:6], detector, 112))
    assert len(faces) >= 5
    region = face_region(112)
    for face in faces:
        mask = face.masks["face_mask"]
        # Aligned: the mask covers the lower face (mouth and chin rows), not the eyes' rows.
        assert mask[80:100, 40:72].mean() > 0.8 and mask[40:55, 30:82].mean() < 0.1, face.key
        assert (mask & ~region).sum() > 0, face.key  # and it reaches past the face ellipse
    celeba = labelled_photos("celebamaskhq", need_shared("data", "faces_train", "celebamaskhq_256"))
    assert [p.split for p in celeba[3999:4001]] == ["train", "val"] and celeba[4500].split == "test"
    # The first photos with glasses in their labels: eyeglasses or sunglasses pixels around the eyes.
    with_glasses = [f for f in labelled_faces("celebamaskhq", celeba[:60], detector, 112)
                    if {"eyeglasses", "sunglasses"} & set(f.masks)]
    assert len(with_glasses) >= 2
    for face in with_glasses:
        glasses = next(m for n, m in face.masks.items() if n in ("eyeglasses", "sunglasses"))
        assert glasses[45:58, 30:82].mean() > 0.4 and glasses[85:].mean() < 0.02, face.key


@pytest.mark.shared_models
def test_the_stage_covers_a_real_face_mask_whole_and_leaves_clear_faces_clear(cpu):
    """Held-out real faces: MaskedFace-Net test masks are found and covered past the face ellipse (rims at the
    chin and cheeks); CelebAMask-HQ test faces labelled clear get synthetic pixels at most rarely."""
    from streamer.datagen.labelled_faces import labelled_faces, labelled_photos
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
    from streamer.occlusion import YoloSegConfig, build_segmenter
    from streamer.records import AlignedCrop

    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=need_shared("models", "scrfd_2.5g_bnkps.onnx"),
                                         input_size=320), cpu)
    segmenter = build_segmenter(YoloSegConfig(), cpu)
    masked = [p for p in labelled_photos("maskedfacenet", need_shared("data", "faces_train", "maskedfacenet_seg_256"))
              if p.split == "test"]
    faces = list(labelled_faces("maskedfacenet", masked, detector, 112))
    identity = np.eye(2, 3, dtype=np.float32)
    occlusions = segmenter.segment([AlignedCrop(f.image, identity) for f in faces])
    region = face_region(112)
    found = [(f, o) for f, o in zip(faces, occlusions) if "face_mask" in o.classes]
    assert len(found) >= 0.9 * len(faces)
    # The target, after the gate (a mask the gate drops counts 0), masks worn under the chin included.
    iou = [(o.mask & f.masks["face_mask"]).sum() / (o.mask | f.masks["face_mask"]).sum() if "face_mask" in o.classes
           else 0.0 for f, o in zip(faces, occlusions)]
    assert len(faces) >= 45 and np.mean(iou) >= 0.85, f"face-mask IoU {np.mean(iou):.3f} over {len(faces)} faces"
    whole = np.mean([(o.mask & f.masks["face_mask"]).sum() / f.masks["face_mask"].sum() for f, o in found])
    clipped = np.mean([(o.mask & region & f.masks["face_mask"]).sum() / f.masks["face_mask"].sum() for f, o in found])
    assert whole > 0.85 and whole > clipped + 0.05, (whole, clipped)

    celeba = labelled_photos("celebamaskhq", need_shared("data", "faces_train", "celebamaskhq_256"))
    clear = [f for f in labelled_faces("celebamaskhq", celeba[4500:4620], detector, 112) if f.clear]
    assert len(clear) >= 100
    clear_occlusions = segmenter.segment([AlignedCrop(f.image, identity) for f in clear])
    synthetic = [f.key for f, o in zip(clear, clear_occlusions) if o.occluded and o.fraction >= 0.05]
    assert len(synthetic) <= 0.02 * len(clear), synthetic


@pytest.mark.shared_models
def test_a_shipped_onnx_model_unfolds_into_a_trainable_checkpoint_that_computes_the_same(tmp_path):
    import onnxruntime
    import torch

    from streamer.occlusion.yolo_seg import DEFAULT_MODEL, network_input
    from streamer.train.occlusion_init import checkpoint_from_onnx
    from streamer.ultralytics_offline import import_ultralytics

    photos = sorted(need_shared("data", "masked_faces", "with_mask").iterdir())[:24]
    images = [cv2.resize(cv2.imread(str(p)), (160, 160)) for p in photos]
    path = checkpoint_from_onnx(DEFAULT_MODEL, "yolo11n-seg.yaml", images[:16], tmp_path / "init.pt")
    network = import_ultralytics().YOLO(str(path), task="segment").model.float().eval()
    batch = network_input(images[16:], 160)  # images the batch norms were not calibrated on
    with torch.no_grad():
        ours = network(torch.from_numpy(batch))[0][0].numpy()
    session = onnxruntime.InferenceSession(str(DEFAULT_MODEL), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {session.get_inputs()[0].name: batch})[0]
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < 1e-2 * np.abs(theirs).max()
    # Training mode (batch statistics) runs too: what ultralytics' trainer will call.
    network.train()
    with torch.no_grad():
        assert network(torch.from_numpy(batch))

def test_eval_and_data_commands_name_bad_input(tmp_path):
    result = run_cli("eval", "occlusion", "--model", str(tmp_path / "none.onnx"), "--detector-model",
                     str(tmp_path / "scrfd.onnx"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.strip() == f"error: --model: not found: {tmp_path / 'none.onnx'}"
    result = run_cli("eval", "occlusion", "--model", str(SHIPPED.with_suffix("").with_suffix(".onnx")),
                     "--celebamaskhq", str(tmp_path / "nowhere"), "--detector-model", "x.onnx",
                     "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "--celebamaskhq: not a folder" in result.stderr
    shipped = str(SHIPPED.with_suffix("").with_suffix(".onnx"))
    result = run_cli("eval", "occlusion", "--model", shipped, "--masked-faces", str(tmp_path), "--detector-model",
                     "x.onnx", "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: --masked-faces: no with_mask/ folder in {tmp_path}"
    result = run_cli("eval", "occlusion", "--model", shipped, "--confidence", "1.5", "--detector-model", "x.onnx",
                     "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.strip() == "error: --confidence: must be between 0 and 1, got 1.5"
    bank = tmp_path / "bank"
    bank.mkdir()
    (bank / "faces.json").write_text(json.dumps({"crop_size": 224, "sources": [], "faces": []}))
    result = run_cli("data", "occlusion", "--bank", str(bank), "--out", str(tmp_path / "data"),
                     "--labelled", f"helmets={tmp_path}", "--detector-model", "x.onnx")
    assert result.returncode == 2 and result.stderr.strip() == (
        f"error: --labelled helmets={tmp_path}: expected KIND=DIR with KIND one of celebamaskhq, maskedfacenet")
