"""Issue 16: clear glasses keep their real pixels (the face is seen through them); dark lenses are still found.

On ../shared's Intel clips the occluder model called clear glasses with dark frames ``sunglasses`` at up to
0.87, and the stream painted synthetic eyes on 8 of 93 faces (benchmarks/occlusion_footage.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamer.occlusion.gate import ClassGate, OccluderGate
from streamer.occlusion.lenses import LIGHT_LENS_RATIO, lens_ratio, named_by_lenses, skin_grey
from streamer.records import AlignedCrop, OccluderInstance
from tests.conftest import need_shared

GLASSES_BAND = (slice(38, 66), slice(20, 92))  # where glasses sit on a 112 px ArcFace-layout crop


def _segmenter(cpu, **occlusion):
    from streamer.occlusion import YoloSegConfig, build_segmenter

    return build_segmenter(YoloSegConfig(**occlusion), cpu)


def _footage_faces(cpu, clip: str, frames: range):
    from streamer.align import align_face
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector

    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=need_shared("models", "scrfd_2.5g_bnkps.onnx")), cpu)
    capture = cv2.VideoCapture(str(need_shared("data", "video", clip)))
    crops, index = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        index += 1
        if index in frames:
            crops += [align_face(frame, points, 112) for points in detector.detect(frame).landmarks]
    capture.release()
    return crops


def test_clear_glasses_on_real_footage_keep_their_real_pixels(cpu):
    """A man and a woman in clear glasses with dark frames, walking to the camera (Intel's sample clip, every
    5th frame from 25 to 40): their glasses are found over the eyes, named eyeglasses because their lenses are
    as light as the face, and the faces keep their real pixels. Were clear glasses not seen through, the same
    faces would be rebuilt."""
    crops = _footage_faces(cpu, "intel_preview_face-demographics-walking-and-pause.gif", range(25, 41, 5))
    assert len(crops) >= 6
    segmenter = _segmenter(cpu)
    confident = 0
    for crop, instances, occlusion in zip(crops, segmenter.instances(crops), segmenter.segment(crops)):
        assert not occlusion.occluded, occlusion.classes
        assert all(i.name != "sunglasses" for i in instances)
        for glasses in (i for i in instances if i.name == "eyeglasses" and i.confidence >= 0.7):
            confident += 1  # as sure as the model is of real masks: it was calling these sunglasses
            assert glasses.mask[GLASSES_BAND].mean() > 0.3
            covered = np.any([i.mask for i in instances], axis=0)
            grey = cv2.cvtColor(crop.image, cv2.COLOR_BGR2GRAY)
            assert lens_ratio(grey, glasses.mask, skin_grey(grey, covered)) >= LIGHT_LENS_RATIO
    assert confident >= 3
    inpainting_glasses = _segmenter(cpu, see_through=[])
    assert sum("eyeglasses" in o.classes for o in inpainting_glasses.segment(crops)) >= 3


def test_dark_sunglasses_on_real_photos_are_still_found(cpu):
    """CelebAMask-HQ test photos (never trained on) of people in dark sunglasses: the stage still names them and
    rebuilds what they hide."""
    from streamer.datagen.labelled_faces import labelled_faces, labelled_photos
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector

    root = need_shared("data", "faces_train", "celebamaskhq_256")
    photos = [p for p in labelled_photos("celebamaskhq", root) if p.image.name in ("4508.jpg", "4875.jpg")]
    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=need_shared("models", "scrfd_2.5g_bnkps.onnx"),
                                         input_size=320), cpu)
    faces = list(labelled_faces("celebamaskhq", photos, detector, 112))
    assert len(faces) == 2 and all("sunglasses" in f.masks for f in faces)  # dark by the label's own rule
    crops = [AlignedCrop(f.image, np.eye(2, 3, dtype=np.float32)) for f in faces]
    for face, occlusion in zip(faces, _segmenter(cpu).segment(crops)):
        assert "sunglasses" in occlusion.classes, (face.key, occlusion.classes)
        truth = face.masks["sunglasses"]
        assert (occlusion.mask & truth).sum() / truth.sum() > 0.7


def test_light_sunglasses_are_named_eyeglasses_and_glasses_seen_through_never_replace_pixels():
    face = np.full((112, 112, 3), 150, np.uint8)
    glasses = np.zeros((112, 112), bool)
    glasses[44:60, 28:84] = True
    light = face.copy()
    light[glasses] = 135  # clear lenses: the face's own grey through them, a little shaded
    dark = face.copy()
    dark[glasses] = 40
    found = [OccluderInstance("sunglasses", 0.8, glasses)]
    assert named_by_lenses(found, light)[0].name == "eyeglasses"
    assert named_by_lenses(found, light)[0].confidence == 0.8
    assert named_by_lenses(found, dark)[0].name == "sunglasses"
    everything = np.ones((112, 112), bool)  # nothing of the face left to compare with: not judged
    assert named_by_lenses([OccluderInstance("sunglasses", 0.8, everything)], light)[0].name == "sunglasses"
    hand = OccluderInstance("hand", 0.9, glasses)
    assert named_by_lenses([hand], light) == [hand]
    # At the threshold: the glasses' grey against the median of the skin the camera saw and nothing covers.
    threshold = round(150 * LIGHT_LENS_RATIO)
    for grey, name in ((threshold + 1, "eyeglasses"), (threshold - 2, "sunglasses")):
        edge = face.copy()
        edge[glasses] = grey
        assert named_by_lenses(found, edge)[0].name == name, grey
    white = light.copy()
    white[60:] = 250  # a white face mask below the glasses...
    assert named_by_lenses(found, white)[0].name == "sunglasses"  # ...counted as skin, clear lenses read dark
    mask = OccluderInstance("face_mask", 0.9, np.zeros((112, 112), bool))
    mask.mask[60:] = True
    assert named_by_lenses([*found, mask], white)[0].name == "eyeglasses"  # covered: not skin
    outside = np.zeros((112, 112), bool)
    outside[60:] = True  # the same rows beyond the frame, its edge replicated: no skin either
    assert named_by_lenses(found, white, outside)[0].name == "eyeglasses"

    gate = OccluderGate({"eyeglasses": ClassGate(confidence=0.3), "sunglasses": ClassGate(confidence=0.3)}, 0.15,
                        see_through=("eyeglasses",))
    assert not gate.occlusion([OccluderInstance("eyeglasses", 0.99, glasses)], 112).occluded
    assert gate.occlusion([OccluderInstance("sunglasses", 0.99, glasses)], 112).classes == ("sunglasses",)
    assert "seen through: eyeglasses" in gate.describe() and "eyeglasses 0.30" not in gate.describe()


def test_see_through_names_its_bad_class_and_defaults_to_the_models_own_glasses(tmp_path, cpu):
    from streamer.config import parse_config
    from streamer.errors import ConfigError
    from streamer.occlusion import build_segmenter

    assert _segmenter(cpu).gate.see_through == ("eyeglasses",)
    assert _segmenter(cpu, see_through=[]).gate.see_through == ()
    assert "seen through: eyeglasses" in _segmenter(cpu).description
    bad = parse_config({"occlusion": {"backend": "yolo_seg", "see_through": ["goggles"]}})
    with pytest.raises(ConfigError, match=r"occlusion\.see_through: .* has no class 'goggles'"):
        build_segmenter(bad.occlusion, cpu)
    # A model that names no eyeglasses sees nothing through by default.
    assert OccluderGate.for_model(tmp_path / "m.onnx", None, 0.15, ("face_mask", "hand")).see_through == ()


def test_the_occlusion_eval_reports_dark_and_clear_glasses_apart():
    from streamer.eval import occlusion as ev

    crop = np.zeros((112, 112, 3), np.uint8)
    glasses = np.zeros((112, 112), bool)
    glasses[44:60, 28:84] = True
    faces = [ev.EvalFace("celebamaskhq", "celebamaskhq/4600.jpg", "test", crop, {"sunglasses": glasses}),
             ev.EvalFace("celebamaskhq", "celebamaskhq/4601.jpg", "test", crop, {"eyeglasses": glasses})]
    found = [[OccluderInstance("sunglasses", 0.9, glasses)], [OccluderInstance("eyeglasses", 0.9, glasses)]]
    rows = ev.measure(faces, found, OccluderGate({}, 0.25, see_through=("eyeglasses",)), 0.05)
    assert rows["celebamaskhq_sunglasses"]["found"] == 1 and rows["celebamaskhq_sunglasses"]["iou"] == 1
    assert rows["celebamaskhq_eyeglasses"]["faces"] == 1 and rows["celebamaskhq_eyeglasses"]["synthetic"] == 0
