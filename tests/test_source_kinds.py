"""The other kinds of source: MJPEG over HTTP, folders of images (batch and watched), V4L2 webcams."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.config import SourceConfig, parse_config
from streamer.errors import ConfigError, SourceError
from streamer.sources import ImageFolderSource, PyAVSource, make_source
from tests.conftest import need_shared, run_cli


def drain(source, count: int, seconds: float) -> list:
    frames, deadline = [], time.monotonic() + seconds
    while len(frames) < count and time.monotonic() < deadline and not source.exhausted:
        frame = source.read(0.1)
        if frame is not None:
            frames.append(frame)
    return frames


class MjpegCamera:
    """An MJPEG-over-HTTP camera: streamer's own live view, fed with frames whose brightness counts up."""

    def __init__(self):
        from streamer.records import StreamStatus
        from streamer.web.server import LiveView, WebConfig

        status = StreamStatus("cam", True, "decoding", True, 0, 0, 0, 0, 0, 0, 0, 0, 10.0, 10.0, 0.0, None, 320, 240,
                              None, None, time.time())
        self.view = LiveView(WebConfig(enabled=True, port=0), lambda: [status]).start()
        self.url = self.view.url.rstrip("/") + "/streams/cam.mjpg"
        self.sending = threading.Event()
        self.sending.set()
        self._closed = threading.Event()
        threading.Thread(target=self._feed, daemon=True).start()

    def _feed(self) -> None:
        value = 0
        while not self._closed.is_set():
            self.sending.wait(0.5)
            if self.sending.is_set():
                self.view.publish("cam", np.full((240, 320, 3), value % 250, np.uint8))
                value += 10
            time.sleep(0.1)

    def close(self) -> None:
        self._closed.set()
        self.view.close()


def test_mjpeg_camera_over_http_is_read_and_its_stall_recovered():
    camera = MjpegCamera()
    source = PyAVSource(SourceConfig(name="mjpeg", uri=camera.url, stall_timeout_s=2.0, backoff_initial_s=0.2))
    source.start()
    try:
        frames = drain(source, 5, 15)
        assert len(frames) == 5 and frames[0].image.shape == (240, 320, 3)
        camera.sending.clear()  # the camera keeps the connection open but sends nothing
        stopped = time.monotonic()
        while source.stats.stalls == 0 and time.monotonic() - stopped < 10:
            source.read(0.1)
        assert source.stats.stalls == 1 and time.monotonic() - stopped < 2.0 + 1.5
        camera.sending.set()
        assert len(drain(source, 5, 15)) == 5
        assert source.stats.reconnects >= 1
    finally:
        source.stop()
        camera.close()


def write_image(path: Path, value: int, size: tuple[int, int]) -> None:
    cv2.imwrite(str(path), np.full((size[1], size[0], 3), value, np.uint8))


def test_folder_gives_every_image_in_natural_order_and_counts_broken_ones(tmp_path):
    write_image(tmp_path / "img10.png", 100, (320, 240))
    write_image(tmp_path / "img2.jpg", 20, (640, 480))
    write_image(tmp_path / "img1.png", 10, (200, 300))
    (tmp_path / "img3.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "notes.txt").write_text("ignored")
    config = SourceConfig(name="stills", uri=str(tmp_path), fps=2)
    assert config.kind == "folder" and not config.is_live
    source = make_source(config)
    assert isinstance(source, ImageFolderSource)
    source.open()
    assert source.total_frames == 4
    source.start()
    frames = drain(source, 10, 10)
    source.stop()
    assert [int(f.image[0, 0, 0]) for f in frames] == [10, 20, 100]  # img1, img2, (img3 broken), img10
    assert [f.image.shape[:2] for f in frames] == [(300, 200), (480, 640), (240, 320)]
    assert [f.pts_s for f in frames] == [0.0, 0.5, 1.0]
    assert source.stats.decode_errors == 1 and "img3.jpg" in source.last_error
    assert source.state == "ended"


def test_empty_or_missing_folder_fails_at_open_naming_it(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(SourceError, match=f"no images .* in {tmp_path}"):
        make_source(SourceConfig(name="stills", uri=str(tmp_path))).open()
    with pytest.raises(ConfigError, match="watch is for folders of images"):
        parse_config({"sources": [{"name": "a", "uri": str(tmp_path / "clip.mp4"), "watch": True}]})


def test_watched_folder_takes_each_new_image_once_it_is_complete(tmp_path):
    source = make_source(SourceConfig(name="snapshots", uri=str(tmp_path), watch=True))
    assert source.live
    source.open()  # an empty watched folder is fine: the camera has not uploaded yet
    source.start()
    try:
        assert drain(source, 1, 1.0) == []
        write_image(tmp_path / "snap-0001.jpg", 40, (320, 240))
        assert [int(f.image[0, 0, 0]) for f in drain(source, 1, 5)] == [40]
        # An upload in progress: half the JPEG now, the rest 1.5 s later.
        ok, encoded = cv2.imencode(".jpg", np.full((480, 640, 3), 200, np.uint8))
        data = encoded.tobytes()
        with open(tmp_path / "snap-0002.jpg", "wb") as upload:
            upload.write(data[: len(data) // 2])
            upload.flush()
            assert drain(source, 1, 1.5) == []  # not taken half-written
            upload.write(data[len(data) // 2:])
        frames = drain(source, 1, 5)
        assert len(frames) == 1 and frames[0].image.shape == (480, 640, 3) and int(frames[0].image.mean()) == 200
        assert source.stats.decode_errors == 0
    finally:
        source.stop()


def test_missing_webcam_is_retried_and_named():
    config = SourceConfig(name="webcam", uri="/dev/video57", options={"video_size": "640x480"})
    assert (config.kind, config.input_format, config.is_live) == ("device", "v4l2", True)
    source = make_source(config)
    source.open()  # a webcam may be plugged in later: not fatal at start
    source.start()
    try:
        deadline = time.monotonic() + 5
        while source.stats.connect_failures < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert source.stats.connect_failures >= 2
        assert "device not found: /dev/video57" in source.last_error
    finally:
        source.stop()


def test_streamer_runs_over_a_folder_of_real_photos(tmp_path):
    photos = need_shared("data", "faces", "identities")
    folder = tmp_path / "photos"
    folder.mkdir()
    names = sorted(p.name for p in photos.iterdir() if p.suffix.lower() in (".jpg", ".png"))[:4]
    for name in names:
        (folder / name).symlink_to(photos / name)
    config = tmp_path / "c.yaml"
    config.write_text(f"sources:\n  - {{name: stills, uri: '{folder}'}}\noutput:\n  dir: {tmp_path / 'out'}\n")
    result = run_cli("run", str(config), "-q", timeout=300)
    assert result.returncode == 0, result.stderr
    import av

    first = cv2.imread(str(folder / names[0]))
    with av.open(str(tmp_path / "out" / "latest" / "stills.mp4")) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    assert len(frames) == len(names)
    assert abs(stream.width - first.shape[1]) <= 1 and abs(stream.height - first.shape[0]) <= 1
    # Each photo is a still of its own: every face found is reported with the photo it is in.
    events = [json.loads(line) for line in (tmp_path / "out" / "latest" / "events.jsonl").read_text().splitlines()]
    starts = [e for e in events if e["type"] == "track_start"]
    ends = [e for e in events if e["type"] == "track_end"]
    assert len(starts) >= 3 and len(ends) == len(starts)
    assert {e["image_file"] for e in starts} <= set(names) and len({e["image_file"] for e in starts}) >= 3
    assert all(e["image_file"] == s["image_file"] for s, e in zip(sorted(starts, key=lambda e: e["track_id"]),
                                                                  sorted(ends, key=lambda e: e["track_id"])))


WEAK_MASKED = ("110.jpg", "168.jpg")  # real masked faces SCRFD-2.5G scores 0.55 and 0.58 (enlarged 1.5x at most)


def _scrfd_run(tmp_path: Path, uri: Path, model: Path, pipeline: str = "{}") -> list[dict]:
    tmp_path.mkdir()
    config = tmp_path / "c.yaml"
    config.write_text(f"sources:\n  - {{name: cam, uri: '{uri}'}}\ndetector: {{backend: scrfd, model: '{model}'}}\n"
                      f"pipeline: {pipeline}\noutput:\n  dir: {tmp_path / 'out'}\n")
    result = run_cli("run", str(config), "-q", timeout=300)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in (tmp_path / "out" / "latest" / "events.jsonl").read_text().splitlines()]


def test_masked_faces_scored_under_the_old_start_score_are_reported_in_stills_and_video(tmp_path, cpu):
    # SCRFD scores many real faces, masked ones most, 0.5-0.6: above its threshold, under the 0.6 that the tracker
    # once asked of a new track. Such a face was found and never reported, in a folder of stills or a video.
    import av

    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector

    model = need_shared("models", "scrfd_2.5g_bnkps.onnx")
    masked = need_shared("data", "masked_faces", "with_mask")
    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=model), cpu)
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in WEAK_MASKED:
        scores = detector.detect(cv2.imread(str(masked / name))).scores
        assert len(scores) == 1 and 0.5 <= scores[0] < 0.6, (name, scores)
        (folder / name).symlink_to(masked / name)
    events = _scrfd_run(tmp_path / "stills", folder, model)
    assert sorted(e["image_file"] for e in events if e["type"] == "track_start") == list(WEAK_MASKED)

    # The first photo as a camera would send it for a second, the person standing still, every frame searched in
    # full. (Between full searches, the search around a face found can score it higher: there the old rule started
    # its track anyway.)
    photo = cv2.imread(str(masked / WEAK_MASKED[0]))
    photo = photo[:photo.shape[0] // 2 * 2, :photo.shape[1] // 2 * 2]
    clip = tmp_path / "masked.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = photo.shape[1], photo.shape[0], "yuv420p"
        for _ in range(10):
            for packet in stream.encode(av.VideoFrame.from_ndarray(photo, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with av.open(str(clip)) as container:
        scores = [detector.detect(f.to_ndarray(format="bgr24")).scores for f in container.decode(video=0)]
    assert all(len(s) == 1 and 0.5 <= s[0] < 0.6 for s in scores), scores
    events = _scrfd_run(tmp_path / "video", clip, model, "{full_detection_every: 1}")
    assert len([e for e in events if e["type"] == "track_start"]) == 1
