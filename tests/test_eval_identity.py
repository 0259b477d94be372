"""streamer eval identity: the protocol's arithmetic on known scores, and a small real run across photos."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest

from streamer.eval.identity import Probes, gallery_sizes, gallery_sweep, is_stranger, open_set, roc, verification
from streamer.identify.calibration import impostor_model
from tests.conftest import need_shared, run_cli


def _probes(people: list[str], enrolled: set[str]) -> Probes:
    n = len(people)
    empty = np.zeros((n, 4, 4, 3), np.uint8)
    return Probes("clean", people, np.array([p in enrolled for p in people]), empty, np.zeros((n, 4, 4), bool),
                  [()] * n, empty)


def test_roc_counts_genuine_above_the_impostor_quantile():
    impostor = np.linspace(0.0, 0.5, 1000)  # the 1% highest are above 0.495
    genuine = np.array([0.2, 0.6, 0.7, 0.9])
    result = roc(genuine, impostor)
    assert result["tar@far0.01"] == 0.75 and result["auc"] > 0.7
    assert roc(impostor[::-1] + 1, impostor)["auc"] == 1.0


def test_verification_and_the_open_set_at_a_threshold():
    enrolled = ["ann", "bob", "cid"]
    probes = _probes(["ann", "bob", "cid", "zed"], set(enrolled))
    scores = np.array([[0.9, 0.1, 0.2],   # ann: right
                       [0.5, 0.4, 0.1],   # bob: taken for ann
                       [0.1, 0.2, 0.3],   # cid: right, but below the threshold
                       [0.1, 0.6, 0.2]])  # a stranger, close to bob
    result = verification(scores, probes, enrolled)
    assert result["rank1"] == round(2 / 3, 4) and result["genuine_pairs"] == 3 and result["impostor_pairs"] == 9
    outcome = open_set(scores, np.array([0, 1, 2, -1]), threshold=0.45)
    assert outcome == {"named_right": round(1 / 3, 4), "named_wrong": round(1 / 3, 4), "strangers_named": 1.0}
    # A larger gallery (distractors) takes the stranger and bob's probe too; a smaller one leaves cid out.
    distractors = np.array([[0.0], [0.95], [0.0], [0.0]])
    sweep = gallery_sweep(scores, distractors, probes, enrolled, [2, 4], threshold=0.45, list_strangers=True)
    assert sweep[2] == {"named_right": 0.5, "named_wrong": 0.5, "strangers_named": 1.0, "threshold": 0.45,
                        "strangers_taken_for": [["zed", "bob", 0.6]]}
    assert sweep[4]["named_wrong"] == round(1 / 3, 4)
    assert sweep[4]["strangers_taken_for"] == [["zed", "bob", 0.6]]
    # A threshold per gallery size (calibrated): higher for the larger gallery, the stranger no longer named.
    sweep = gallery_sweep(scores, distractors, probes, enrolled, [2, 4], threshold=lambda size: 0.3 + size / 10)
    assert sweep[4]["strangers_named"] == 0.0 and sweep[4]["threshold"] == 0.7
    assert gallery_sizes((2, 4, 100), 3, 1) == [2, 4]  # 100 wanted, 4 there: said as 4


def test_a_probe_whose_face_the_detector_missed_is_named_for_nobody_on_any_path():
    from streamer.eval.identity import ProbeVectors, gallery_index, path_scores

    enrolled = ["ann", "bob"]
    index = gallery_index("m", np.eye(2, dtype=np.float32))
    as_seen = np.array([[1, 0], [0, 1], [0.8, 0.6]], np.float32)  # each probe like its own person (zed like ann)
    found = np.array([True, False, True])  # bob's face was not found again under his occluder
    vectors = ProbeVectors(as_seen, None, as_seen, as_seen, np.ones(3, bool), np.ones(3, bool), found)
    scores = path_scores(index, vectors)
    assert all(np.isneginf(s[1]).all() and np.isfinite(s[[0, 2]]).all() for s in scores.values())
    probes = _probes(["ann", "bob", "zed"], set(enrolled))
    result = verification(scores["fused"], probes, enrolled)
    # bob's genuine pair is a miss at every threshold; his row makes no impostor pairs; he is not ranked first.
    assert result["genuine_pairs"] == 2 and result["impostor_pairs"] == 3 and result["rank1"] == 0.5
    assert result["tar@far0.01"] == 0.5
    assert open_set(scores["fused"], np.array([0, 1, -1]), 0.5) == {"named_right": 0.5, "named_wrong": 0.0,
                                                                   "strangers_named": 1.0}


def test_the_calibrated_threshold_rises_with_the_gallery_and_holds_the_false_accepts():
    rng = np.random.default_rng(0)
    people = rng.normal(size=(2000, 128)).astype(np.float32)
    people /= np.linalg.norm(people, axis=1, keepdims=True)
    model = impostor_model(people, np.arange(len(people)))
    assert abs(model.mean) < 0.01 and 0.08 < model.std < 0.1  # random 128-d directions: sd 1/sqrt(128)
    small, large = model.threshold(100, 0.01), model.threshold(10_000, 0.01)
    assert small < large
    strangers = rng.normal(size=(2000, 128)).astype(np.float32)
    strangers /= np.linalg.norm(strangers, axis=1, keepdims=True)
    best = (strangers @ people[:1000].T).max(axis=1)
    assert (best >= model.threshold(1000, 0.01)).mean() < 0.03  # about 1% named against 1,000 people
    assert impostor_model(people[:10], np.arange(10)) is None  # too few people to say


def test_strangers_are_chosen_by_name_whatever_the_order():
    names = [f"{i:04d}" for i in range(300)]
    strangers = {n for n in names if is_stranger(n, 1 / 3, seed=0)}
    assert 70 < len(strangers) < 130
    assert strangers == {n for n in reversed(names) if is_stranger(n, 1 / 3, seed=0)}


def test_a_small_run_across_real_photos_names_clean_faces_and_loses_some_to_masks(tmp_path):
    faces = need_shared("data", "faces_eval", "celeba_identity_160")
    need_shared("models", "scrfd_2.5g_bnkps.onnx")
    occluders = need_shared("data", "occluders")
    out = tmp_path / "eval"
    result = run_cli("eval", "identity", "--faces", str(faces), "--config", "configs/dev-shared-models.yaml",
                     "--people", "24", "--probes-per-person", "2", "--conditions", "clean", "face_mask",
                     "--sizes", "8", "--occluders", str(occluders), "--out", str(out), timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "identity.json").read_text())
    [figures] = [e["figures"] for e in report["embedders"].values()]
    assert report["data"]["enrolled"] >= 10 and report["data"]["strangers"] >= 3
    clean, masked = figures["clean"], figures["face_mask"]
    assert clean["visible"]["rank1"] >= 0.6  # MobileFaceNet names most clean faces across photos
    assert masked["segmented"] >= 0.8  # the product's segmenter finds most drawn masks
    # Probes are aligned by the detector on the face as the camera saw it: it finds nearly every clean one.
    assert clean["detected"] >= 0.9 and 0.5 <= masked["detected"] <= 1.0
    # ... and a mask moves the landmarks it finds further from the clean photo's than camera faults alone do.
    assert clean["landmarks_strayed"]["median"] < masked["landmarks_strayed"]["median"]
    assert report["data"]["probe_alignment"] == "detector"
    assert masked["visible"]["auc"] < clean["visible"]["auc"]  # a mask takes identity away
    assert set(figures["clean"]["fused"]["open_set"]["fixed"]) == {"8"}
    [scored] = report["embedders"].values()
    share = scored["share_of_clean"]["face_mask"]
    assert share == round(masked["fused"]["tar@far0.01"] / clean["fused"]["tar@far0.01"], 4)
    page = (out / "identity.md").read_text()
    assert page.count("| face_mask |") == 1 and f"| {100 * share:.1f}% |" in page
    assert "of 1 classes reach it" in page and "of 1 classes reach it" in result.stdout
    assert list(out.glob("roc_*.png"))


def test_a_judge_that_is_no_embedder_is_a_one_line_error_naming_it(tmp_path):
    result = run_cli("eval", "identity", "--faces", str(tmp_path), "--judge", "nope.onnx", "--out", str(tmp_path / "o"))
    assert result.returncode != 0 and result.stderr.strip().splitlines() == [
        "error: --judge: 'nope.onnx' is neither dlib nor an existing ArcFace .onnx"]
    # LBP cannot judge who may be one person across photos: not offered
    result = run_cli("eval", "identity", "--faces", str(tmp_path), "--judge", "lbp_histogram", "--out", str(tmp_path))
    assert result.returncode != 0 and result.stderr.strip().splitlines() == [
        "error: --judge: 'lbp_histogram' is neither dlib nor an existing ArcFace .onnx"]


def test_the_fused_path_is_the_products_rule_student_first_reconstruction_only_where_matched():
    from streamer.eval.identity import ProbeVectors, gallery_index, path_scores

    axes = np.eye(3, dtype=np.float32)  # three enrolled people, one axis each
    index = gallery_index("m", axes)
    visible = np.array([[0.6, 0.8, 0], [0.6, 0.8, 0]], np.float32)  # both probes lean to person 1 as seen
    student = np.array([[0.8, 0.6, 0], [0.8, 0.6, 0]], np.float32)  # the student leans to person 0
    rebuilt = np.array([[0, 0, 1], [0, 0, 1]], np.float32)  # the reconstruction says person 2
    vectors = ProbeVectors(visible, None, student, rebuilt, rebuilt=np.array([True, True]),
                           used=np.array([True, False]))  # the second probe's occluder is not matched on it
    scores = path_scores(index, vectors)
    assert vectors.paths == ("visible", "student", "reconstruction", "fused")
    assert scores["fused"][0].argmax() == 2 and scores["fused"][1].argmax() == 0
    assert np.allclose(scores["fused"][1], scores["student"][1])
    without_student = ProbeVectors(visible, None, None, rebuilt, np.array([True, True]), np.array([False, False]))
    assert "student" not in path_scores(index, without_student)
    assert np.allclose(path_scores(index, without_student)["fused"], scores["visible"])


def test_a_threshold_per_probe_is_kept_with_its_probe_as_the_gallery_shrinks():
    enrolled = ["ann", "bob", "cid"]
    probes = _probes(["ann", "cid", "zed"], set(enrolled))
    scores = np.array([[0.5, 0.1, 0.1], [0.1, 0.1, 0.5], [0.5, 0.1, 0.1]])
    per_probe = np.array([0.4, 0.4, 0.6])  # the stranger's face was compared twice per identity: higher
    sweep = gallery_sweep(scores, np.zeros((3, 0)), probes, enrolled, [2, 3], threshold=lambda size: per_probe,
                          list_strangers=True)
    assert sweep[2] == {"named_right": 1.0, "named_wrong": 0.0, "strangers_named": 0.0, "threshold": 0.6,
                        "strangers_taken_for": []}
    assert sweep[3]["named_right"] == 1.0 and sweep[3]["strangers_named"] == 0.0


def test_the_target_is_read_as_each_class_share_of_the_clean_figure_on_the_products_decision():
    from streamer.eval.identity_report import share_of_clean, target_line

    def tar(value):
        return {"fused": {"tar@far0.01": value}, "visible": {"tar@far0.01": 0.1}}

    figures = {"clean": tar(0.8), "face_mask": tar(0.76), "hand": tar(0.6)}
    shares = share_of_clean(figures)
    assert shares == {"face_mask": 0.95, "hand": 0.75}
    line = target_line(shares)
    assert "1 of 2 classes reach it (face_mask)" in line and "the lowest is hand, 75.0%" in line
    assert share_of_clean({"face_mask": tar(0.7)}) == {}  # nothing clean to compare with
    assert share_of_clean({"clean": tar(0.0), "hand": tar(0.1)}) == {}


def test_reconstruction_is_recommended_only_where_matching_it_raises_the_decision():
    """Judged at FAR 0.1%, the rate nearest the calibrated thresholds the product names people at, not at 1%."""
    from streamer.eval.identity_report import recommend

    def condition(seen, student, if_matched, at_1_percent=(0.5, 0.5)):
        paths = {"visible": {"tar@far0.001": seen, "tar@far0.01": at_1_percent[0]},
                 "tar@far0.001_if_matched": if_matched, "tar@far0.01_if_matched": at_1_percent[1]}
        if student is not None:
            paths["student"] = {"tar@far0.001": student, "tar@far0.01": at_1_percent[0]}
        return paths

    figures = {"clean": condition(0.8, None, 0.9), "face_mask": condition(0.5, None, 0.6),
               "sunglasses": condition(0.7, None, 0.65)}
    assert recommend(figures) == ["face_mask"]  # never "clean": there is nothing to reconstruct
    figures["face_mask"] = condition(0.5, 0.7, 0.6)  # the student alone does better than the two together
    assert recommend(figures) == []
    # lower at FAR 1%, higher at 0.1% (dlib's student under face masks): recommended
    figures["face_mask"] = condition(0.28, 0.28, 0.30, at_1_percent=(0.57, 0.555))
    assert recommend(figures) == ["face_mask"]
    # a gain of a pair or two is noise, not a reason to match a reconstruction (sunglasses: 0.271 -> 0.274)
    figures["sunglasses"] = condition(0.271, 0.271, 0.274)
    assert recommend(figures) == ["face_mask"]
    figures["sunglasses"] = condition(0.271, 0.271, 0.281)
    assert recommend(figures) == ["face_mask", "sunglasses"]


def test_a_measured_tail_sets_the_threshold_where_strangers_reach_not_where_a_normal_would():
    from streamer.identify.calibration import TAIL_RATES, ImpostorModel, ImpostorTail

    normal = [statistics.NormalDist().inv_cdf(1 - p) for p in TAIL_RATES]
    light = ImpostorTail(tuple(0.75 * z for z in normal))  # strangers reach three quarters as far (as dlib's)
    assert light.at(1e-3) == pytest.approx(0.75 * normal[1])
    assert light.at(3e-4) == pytest.approx(0.75 * statistics.NormalDist().inv_cdf(1 - 3e-4), abs=1e-9)
    assert light.at(1e-8) == pytest.approx(0.75 * statistics.NormalDist().inv_cdf(1 - 1e-8), rel=1e-6)  # carried on
    gallery = ImpostorModel(0.84, 0.03, 100_000)
    measured = ImpostorModel(0.84, 0.03, 100_000, light)
    assert gallery.threshold(1000, 0.01) > 0.96 > measured.threshold(1000, 0.01) > 0.93
    assert measured.threshold(100, 0.01) < measured.threshold(1000, 0.01)  # still rises with the gallery


def test_a_probe_cut_again_keeps_which_of_its_pixels_lie_beyond_the_photo():
    from streamer.eval.identity import _beyond
    from streamer.records import AlignedCrop

    photo_outside = np.zeros((8, 8), bool)
    photo_outside[:, :2] = True  # the first crop's two left columns were beyond the photo's edge
    shifted = AlignedCrop(np.zeros((8, 8, 3), np.uint8), np.array([[1.0, 0, 1], [0, 1, 0]]),
                          outside=np.pad(np.ones((8, 1), bool), ((0, 0), (0, 7))))  # cut one pixel further left
    beyond = _beyond(shifted, photo_outside)
    assert beyond[:, :3].all() and not beyond[:, 3:].any()
    assert _beyond(shifted, None) is shifted.outside


def test_how_far_the_detectors_landmarks_stray_is_measured_in_the_first_crop_in_eye_distances():
    from streamer.align import ARCFACE_112
    from streamer.eval.identity import _strayed
    from streamer.records import AlignedCrop

    # Cut again two pixels further right: the detector's points, seen in the new crop, sit two pixels left.
    crop = AlignedCrop(np.zeros((112, 112, 3), np.uint8), np.array([[1.0, 0, -2], [0, 1, 0]]))
    found_in_new_crop = ARCFACE_112 + [-2 + 3.524, 0]  # and truly 3.524 px (0.1 eye distance) right of the photo's
    assert abs(_strayed(crop, found_in_new_crop, ARCFACE_112) - 0.1) < 1e-3
