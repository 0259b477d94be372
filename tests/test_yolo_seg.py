"""The YOLO-seg adapter with a real (untrained) ultralytics segmentation model built offline from its yaml."""

import os
import socket

import pytest

from streamer.align import align_face


@pytest.fixture(scope="module")
def yolo_checkpoint(tmp_path_factory):
    from streamer.ultralytics_offline import import_ultralytics

    ultralytics = import_ultralytics()
    model = ultralytics.YOLO("yolov8n-seg.yaml", task="segment")  # architecture only: no weights fetched
    path = tmp_path_factory.mktemp("yolo") / "occluders-untrained.pt"
    model.save(str(path))
    return path


def test_yolo_seg_loads_from_the_configured_path_and_returns_crop_masks(yolo_checkpoint, sprites, cpu, monkeypatch):
    from streamer.occlusion.yolo_seg import YoloSegConfig, YoloSegSegmenter

    def no_network(*args, **kwargs):
        raise AssertionError("ultralytics tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    segmenter = YoloSegSegmenter(YoloSegConfig(backend="yolo_seg", model=yolo_checkpoint, imgsz=128), cpu)
    crops = [align_face(s.image, s.landmarks, 112) for s in sprites[:3]]
    occlusions = segmenter.segment(crops)
    assert len(occlusions) == 3
    for occlusion in occlusions:
        assert occlusion.mask.shape == (112, 112) and occlusion.mask.dtype == bool
        assert 0.0 <= occlusion.fraction <= 1.0
    assert os.environ["YOLO_AUTOINSTALL"] == "false"
    assert len(segmenter.class_names) == 80  # the yaml's (COCO-sized) head, its names the class indices
    assert "ultralytics" in segmenter.description  # a checkpoint runs through ultralytics, an export does not


def test_a_checkpoint_that_is_not_a_yolo_model_is_refused_by_name(tmp_path, cpu):
    from streamer.errors import ModelError
    from streamer.occlusion.yolo_seg import YoloSegConfig, YoloSegSegmenter

    checkpoint = tmp_path / "occluders.pt"
    checkpoint.write_bytes(b"not a pickle, not a zip" * 50)
    with pytest.raises(ModelError, match=f"cannot load YOLO model {checkpoint}") as caught:
        YoloSegSegmenter(YoloSegConfig(backend="yolo_seg", model=checkpoint), cpu)
    assert "\n" not in str(caught.value)


def test_missing_yolo_file_is_a_clear_error_not_a_download(tmp_path):
    from streamer.errors import ModelError
    from streamer.ultralytics_offline import load_yolo

    with pytest.raises(ModelError, match="YOLO model file not found: .*yolov8n-seg.pt"):
        load_yolo(tmp_path / "yolov8n-seg.pt", task="segment")
    assert not (tmp_path / "yolov8n-seg.pt").exists()


def test_yolo_config_refuses_other_formats(tmp_path):
    from streamer.config import parse_config
    from streamer.errors import ConfigError

    weights = tmp_path / "model.pkl"
    weights.write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"occlusion.model: expected a .pt or .onnx YOLO-seg model"):
        parse_config({"occlusion": {"backend": "yolo_seg", "model": str(weights)}})
