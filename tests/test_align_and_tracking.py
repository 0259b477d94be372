import numpy as np

from streamer.align import align_face, paste_back, template
from streamer.records import Detections, Face, FrameResult, Match, VideoFrame
from streamer.track.events import TrackEvents
from streamer.track.iou import IouTracker


def test_alignment_puts_landmarks_on_the_template():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (300, 400, 3), np.uint8)
    landmarks = template(112) * 1.7 + [120, 60]  # the face, scaled and moved
    crop = align_face(image, landmarks, 224)
    mapped = (crop.matrix[:, :2] @ landmarks.T).T + crop.matrix[:, 2]
    assert np.allclose(mapped, template(224), atol=0.5)


def test_paste_back_changes_only_the_masked_area():
    frame = np.full((200, 200, 3), 50, np.uint8)
    crop = align_face(frame, template(112) + [40, 40], 112)
    mask = np.zeros((112, 112), bool)
    mask[70:100, 30:80] = True
    out = paste_back(frame.copy(), crop, np.full((112, 112, 3), 200, np.uint8), mask, feather_px=2)
    changed = np.any(out != 50, axis=2)
    assert changed[40 + 80, 40 + 55]  # inside the mask (shifted by the crop offset)
    assert not changed[:40].any() and not changed[:, :40].any()  # far outside stays untouched


def test_detections_check_shapes():
    import pytest

    with pytest.raises(ValueError, match=r"Detections.scores must have shape \(2,\), but got shape \(3,\)"):
        Detections(np.zeros((2, 4)), np.zeros(3), np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match=r"VideoFrame.image must have shape \(_, _, 3\)"):
        VideoFrame("cam", 0, np.zeros((4, 4)), None, 0.0, 0.0)


def test_tracker_keeps_ids_through_motion_and_brief_misses():
    tracker = IouTracker(min_hits=2, max_misses=2)
    box = np.array([[10, 10, 60, 60]], np.float32)
    ids = []
    for step in range(6):
        if step == 3:
            tracks, ended = tracker.update(np.zeros((0, 4), np.float32))  # one missed frame
            assert ended == []
            continue
        tracks, _ = tracker.update(box + step * 4)
        ids.append(tracks[0].track_id if tracks[0] else None)
    assert ids == [None, 1, 1, 1, 1]  # tentative first, then one stable ID
    for _ in range(3):
        _, ended = tracker.update(np.zeros((0, 4), np.float32))
    assert [t.track_id for t in ended] == [1] and tracker.tracks == {}


def _result(index: int, identity: str | None, occluded: bool):
    from streamer.records import Occlusion

    frame = VideoFrame("cam", index, np.zeros((100, 100, 3), np.uint8), index / 10, 1.7e9, 0.0)
    face = Face(np.array([10, 10, 50, 50], np.float32), 0.9, np.zeros((5, 2), np.float32))
    face.match = Match(identity, 0.8 if identity else 0.1)
    mask = np.ones((112, 112), bool) if occluded else np.zeros((112, 112), bool)
    face.occlusion = Occlusion(mask, ("lower_face",) if occluded else (), 0.4 if occluded else 0.0)
    return FrameResult(frame, [face])


def test_events_only_on_change_with_occlusion_hysteresis():
    events = TrackEvents("cam", min_hits=1, max_misses=5)
    occluded = [False, False, True, False, False, True, True, True, True]  # one-frame blip, then a real change
    emitted = [e for i, occ in enumerate(occluded) for e in events.update(_result(i, "alice", occ))]
    assert [e["type"] for e in emitted] == ["track_start", "identity", "occlusion"]
    assert emitted[2]["frame"] == 7 and emitted[2]["occluded"] is True
    assert emitted[1]["identity"] == "alice" and emitted[1]["stream"] == "cam"
    ended = events.close(None)
    assert [e["type"] for e in ended] == ["track_end"]
