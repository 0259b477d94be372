import pytest

from streamer.config import load_config, parse_config, redacted_dump
from streamer.errors import ConfigError
from tests.conftest import run_cli


def error_of(data) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, origin="cfg.yaml")
    return str(info.value)


def test_defaults_are_the_offline_stages():
    config = parse_config({})
    assert (config.detector.backend, config.occlusion.backend, config.inpainter.backend, config.embedder.backend) == (
        "yunet", "yolo_seg", "learned", "dlib")


def test_unknown_key_is_named_with_its_path():
    assert error_of({"pipeline": {"crop_sise": 112}}) == "cfg.yaml: pipeline.crop_sise: unknown key"
    assert error_of({"sources": [{"name": "a", "uri": "x.mp4", "fsp": 3}]}) == "cfg.yaml: sources[0].fsp: unknown key"


def test_wrong_type_and_bounds_name_the_key():
    assert error_of({"pipeline": {"crop_size": "big"}}).startswith("cfg.yaml: pipeline.crop_size: Input should be")
    assert "pipeline.crop_size" in error_of({"pipeline": {"crop_size": 100}})


def test_missing_model_file_names_key_and_file():
    message = error_of({"detector": {"backend": "scrfd", "model": "/nowhere/det.onnx"}})
    assert message == "cfg.yaml: detector.model: file not found: /nowhere/det.onnx"


def test_unknown_backend_lists_the_known_ones():
    message = error_of({"embedder": {"backend": "facenet"}})
    assert "embedder" in message and "'facenet'" in message and "'arcface'" in message


def test_duplicate_source_names_are_refused():
    assert "repeated: cam" in error_of({"sources": [{"name": "cam", "uri": "a.mp4"}, {"name": "cam", "uri": "b.mp4"}]})


def test_secret_from_environment_is_used_but_never_shown(monkeypatch):
    monkeypatch.setenv("CAM_PASS", "s3cr3t-pw")
    config = parse_config({"sources": [{"name": "door", "uri": "rtsp://admin:${CAM_PASS}@10.0.0.5/live"}]})
    assert config.sources[0].uri == "rtsp://admin:s3cr3t-pw@10.0.0.5/live"
    shown = redacted_dump(config)
    assert "s3cr3t-pw" not in shown and "rtsp://admin:***@10.0.0.5/live" in shown


def test_unset_environment_variable_is_named():
    assert error_of({"sources": [{"name": "a", "uri": "rtsp://u:${NOT_SET_ANYWHERE}@h/x"}]}) == (
        "cfg.yaml: sources[0].uri: environment variable NOT_SET_ANYWHERE is not set")


def test_command_line_sources_get_unique_names(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("sources:\n  - {name: lobby, uri: a.mp4}\n")
    config = load_config(path, ["rtsp://cam1/x", "/videos/lobby.mp4", "/other/lobby.mp4"])
    assert [s.name for s in config.sources] == ["lobby", "cam1", "lobby-2", "lobby-3"]
    assert [s.keeps_every_frame for s in config.sources] == [True, False, True, True]


def test_invalid_yaml_gives_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("pipeline:\n  crop_size: [112\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+: invalid YAML"):
        load_config(path)


def test_config_show_cli_redacts(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("sources:\n  - {name: gate, uri: 'rtsp://op:Hunter2pw@cam.local:554/s1'}\n")
    result = run_cli("config", "show", str(path), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Hunter2pw" not in result.stdout + result.stderr
    assert "rtsp://op:***@cam.local:554/s1" in result.stdout


def test_shipped_configs_load(monkeypatch):
    from tests.conftest import ROOT, SHARED

    for name in ("default.yaml", "demo.yaml"):
        load_config(ROOT / "configs" / name)
    if SHARED.exists():
        config = load_config(ROOT / "configs" / "dev-shared-models.yaml")
        assert config.detector.backend == "scrfd"
    monkeypatch.setenv("GATE_PASSWORD", "pw-for-test")
    with pytest.raises(ConfigError, match=r"detector.model: file not found: .*buffalo_s"):
        load_config(ROOT / "configs" / "camera.example.yaml")  # until the user fetches the models


def test_a_frame_asked_for_with_plain_cosine_thresholds_is_refused():
    with pytest.raises(ConfigError, match=r"gallery.*frame: true.*gallery.threshold"):
        parse_config({"gallery": {"frame": True, "threshold": 0.9}})
    with pytest.raises(ConfigError, match=r"gallery.*frame: true.*occluder_thresholds"):
        parse_config({"gallery": {"frame": True, "occluder_thresholds": {"face_mask": 0.3}}})
    with pytest.raises(ConfigError, match=r"gallery.frame: true: embedder lbp_histogram"):
        parse_config({"gallery": {"frame": True}, "embedder": {"backend": "lbp_histogram"}})
    from types import SimpleNamespace

    from streamer.identify import gallery_frame

    dlib = SimpleNamespace(model_id="dlib:resnet_v1:55533b28a958", student=None)
    assert gallery_frame(parse_config({}), dlib).exponent == 0.15  # dlib, the default embedder: framed
    assert gallery_frame(parse_config({"gallery": {"threshold": 0.9}}), dlib) is None  # a plain cosine asked for
    assert gallery_frame(parse_config({"gallery": {"frame": False}}), dlib) is None
    arcface = parse_config({"embedder": {"backend": "arcface", "model": __file__}})
    assert gallery_frame(arcface, dlib) is None  # measured to help dlib only
