import numpy as np

from streamer.align import align_face, beyond_frame, paste_back, template
from streamer.records import Detections, VideoFrame
from streamer.track.bytetrack import ByteTracker


def test_alignment_puts_landmarks_on_the_template():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (300, 400, 3), np.uint8)
    landmarks = template(112) * 1.7 + [120, 60]  # the face, scaled and moved
    crop = align_face(image, landmarks, 224)
    mapped = (crop.matrix[:, :2] @ landmarks.T).T + crop.matrix[:, 2]
    assert np.allclose(mapped, template(224), atol=0.5)


def test_a_crop_says_which_of_its_pixels_lie_beyond_the_frame():
    """A face at the picture's edge: the crop's pixels past the edge are the edge replicated, and the crop says so;
    a face wholly inside says nothing."""
    frame = np.zeros((200, 300, 3), np.uint8)
    assert align_face(frame, template(112) + [40, 40], 112).outside is None
    crop = align_face(frame, template(112) + [230, 120], 112)  # crop x 230..342 of 300, y 120..232 of 200
    assert crop.outside is not None and crop.outside.shape == (112, 112)
    beyond = np.zeros((112, 112), bool)
    beyond[:, 300 - 230:] = True  # columns past x = 299
    beyond[200 - 120:, :] = True  # rows past y = 199
    assert (crop.outside != beyond).sum() <= 2 * 112  # the fitted matrix is a hair off a pure shift
    # An exact shift: the last frame pixel (x 299, y 199) is inside, the next one is not.
    exact = beyond_frame(np.array([[1, 0, -230], [0, 1, -120]], np.float64), 112, (200, 300))
    assert np.array_equal(exact, beyond)
    assert beyond_frame(np.array([[1, 0, -188], [0, 1, -88]], np.float64), 112, (200, 300)) is None  # ends at 299, 199


def test_paste_back_changes_only_the_masked_area():
    frame = np.full((200, 200, 3), 50, np.uint8)
    crop = align_face(frame, template(112) + [40, 40], 112)
    mask = np.zeros((112, 112), bool)
    mask[70:100, 30:80] = True
    out = paste_back(frame.copy(), crop, np.full((112, 112, 3), 200, np.uint8), mask, feather_px=2)
    changed = np.any(out != 50, axis=2)
    assert changed[40 + 80, 40 + 55]  # inside the mask (shifted by the crop offset)
    assert not changed[:40].any() and not changed[:, :40].any()  # far outside stays untouched
    # A whole occluder reaching the crop's bottom edge (a mask over the chin): it fades out at the edge instead
    # of ending in the crop's straight border.
    mask[70:] = True
    out = paste_back(frame.copy(), crop, np.full((112, 112, 3), 200, np.uint8), mask, feather_px=2).astype(int)
    column = out[40 + 100:40 + 112, 40 + 55, 0]
    assert column[0] == 200 and 50 < column[-1] < 200 and (np.diff(column) <= 0).all(), column
    assert (out[40 + 112:, :, 0] == 50).all()  # below the crop: the frame as it was


def test_detections_check_shapes():
    import pytest

    with pytest.raises(ValueError, match=r"Detections.scores must have shape \(2,\), but got shape \(3,\)"):
        Detections(np.zeros((2, 4)), np.zeros(3), np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match=r"VideoFrame.image must have shape \(_, _, 3\)"):
        VideoFrame("cam", 0, np.zeros((4, 4)), None, 0.0, 0.0)


def test_tracker_keeps_ids_through_motion_and_brief_misses():
    tracker = ByteTracker(min_hits=2, max_misses=2)
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


def test_tracker_follows_crossing_faces_and_low_confidence_detections():
    """Two faces cross (their boxes overlap mid-way): the motion model keeps each on its own ID;
    a face whose score drops (half-hidden) keeps its track, while a one-frame blip never gets one."""
    tracker = ByteTracker(min_hits=2, max_misses=5)
    seen = {}
    for step in range(20):
        left = np.array([20 + 12 * step, 50, 80 + 12 * step, 110], np.float32)
        right = np.array([260 - 12 * step, 56, 320 - 12 * step, 116], np.float32)
        scores = np.array([0.9, 0.3 if 8 <= step <= 12 else 0.9], np.float32)  # right one half-hidden
        boxes = np.stack([left, right])
        if step == 6:
            boxes, scores = np.vstack([boxes, [[400, 400, 440, 440]]]), np.r_[scores, 0.95]
        tracks, _ = tracker.update(boxes, scores)
        for name, track in zip(("left", "right", "blip"), tracks):
            if track is not None:
                seen.setdefault(name, set()).add(track.track_id)
    assert seen["left"] == {1} and seen["right"] == {2}
    assert "blip" not in seen
