"""`streamer models pull` against a real local HTTP server (the official address needs internet)."""

import hashlib
import zipfile

import pytest

from tests.conftest import run_cli, static_http_server


@pytest.fixture()
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    with static_http_server(root) as base:
        yield root, base


def _pack(path, members: dict) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pull_checks_sha256_and_installs_only_models(http_server, tmp_path):
    root, base = http_server
    digest = _pack(root / "pack.zip", {"pack/det_10g.onnx": b"detector", "../../evil.onnx": b"x", "readme.txt": b"r"})
    models = tmp_path / "models"
    result = run_cli("models", "pull", "mypack", "--url", f"{base}/pack.zip", "--sha256", digest,
                     "--dir", str(models), timeout=120)
    assert result.returncode == 0, result.stderr
    installed = sorted(p.name for p in (models / "mypack").iterdir())
    assert installed == ["det_10g.onnx", "evil.onnx"]  # flattened: no path from the archive is trusted
    assert not (tmp_path / "evil.onnx").exists()
    listing = run_cli("models", "--dir", str(models), timeout=120)
    assert "buffalo_l" in listing.stdout and "not installed" in listing.stdout


def test_pull_refuses_a_tampered_archive_and_installs_nothing(http_server, tmp_path):
    root, base = http_server
    _pack(root / "buffalo_s.zip", {"det_500m.onnx": b"not the real model"})
    models = tmp_path / "models"
    result = run_cli("models", "pull", "buffalo_s", "--mirror", base, "--dir", str(models), timeout=120)
    assert result.returncode == 2
    assert "SHA-256 mismatch" in result.stderr and "d85a87f503f691807cd8bb97128bdf7a0660326cd9cd02657127fa978bab8b5e" \
        in result.stderr
    assert not (models / "buffalo_s").exists()
    assert [p for p in models.iterdir()] == []  # no partial download left behind


def test_pull_needs_a_digest_when_none_is_pinned(tmp_path):
    result = run_cli("models", "pull", "buffalo_l", "--dir", str(tmp_path), timeout=120)
    assert result.returncode == 2 and "no pinned SHA-256" in result.stderr and "--sha256" in result.stderr


def test_unreachable_server_is_one_line(tmp_path):
    result = run_cli("models", "pull", "x", "--url", "http://127.0.0.1:9/x.zip", "--sha256", "0" * 64,
                     "--dir", str(tmp_path), timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: cannot download http://127.0.0.1:9/x.zip")


def test_yunet_is_pulled_as_one_checked_file_and_runs_from_its_folder(http_server, tmp_path):
    """The catalogue's YuNet (MIT) is one .onnx, not an archive: fetched from a mirror with the pinned digest, it lands
    in its pack folder, and ``detector: {backend: yunet, model: FOLDER}`` finds faces with it."""
    import shutil

    import cv2

    from engines import Device
    from streamer.config import parse_config
    from streamer.detect import build_detector, detect_in_photo
    from tests.conftest import need_shared

    root, base = http_server
    shutil.copy(need_shared("models", "yunet_face_detection.onnx"), root / "face_detection_yunet_2026may.onnx")
    models = tmp_path / "models"
    result = run_cli("models", "pull", "yunet", "--mirror", base, "--dir", str(models), timeout=120)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (models / "yunet").iterdir()] == ["face_detection_yunet_2026may.onnx"]
    detector = build_detector(parse_config({"detector": {"backend": "yunet", "model": str(models / "yunet")}}).detector,
                              Device("cpu"))
    photo = cv2.imread(str(sorted(need_shared("data", "masked_faces", "with_mask").iterdir())[0]))
    assert len(detect_in_photo(detector, photo)[0]) >= 1
    (root / "face_detection_yunet_2026may.onnx").write_bytes(b"not the model")  # tampered: nothing installed
    result = run_cli("models", "pull", "yunet", "--mirror", base, "--dir", str(tmp_path / "other"), timeout=120)
    assert result.returncode == 2 and "SHA-256 mismatch" in result.stderr
    assert not (tmp_path / "other" / "yunet").exists()
