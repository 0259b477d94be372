"""Shared test fixtures: real media made in the tests, real models from ../shared."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tests.paths import FACES, MODELS, ROOT, SHARED  # noqa: F401  (re-exported for the tests)

# Never let a test reach for the network through ultralytics.
os.environ.setdefault("YOLO_OFFLINE", "true")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")


def need_shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the project's shared test data)")
    return path


@pytest.fixture(scope="session")
def face_bank(tmp_path_factory):
    """A face bank of 40 real photos (SCRFD-aligned by the CLI)."""
    photos = sorted(need_shared("data", "masked_faces", "without_mask").iterdir())[:40]
    root = tmp_path_factory.mktemp("photos") / "without_mask"
    root.mkdir()
    for photo in photos:
        (root / photo.name).symlink_to(photo)
    out = tmp_path_factory.mktemp("bank")
    result = run_cli("data", "faces", "--faces", str(root), "--detector-model",
                     str(need_shared("models", "scrfd_500m_bnkps.onnx")), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def run_cli(*args: str, timeout: float = 300, cwd: Path | None = None, env: dict | None = None):
    """Runs ``python -m streamer ARGS`` as a user would; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "streamer", *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT, env={**os.environ, **(env or {})},
    )


def write_clip(path: Path, frames: int, size=(320, 240), fps: int = 10, fragmented: bool = False,
               bframes: int | None = None) -> Path:
    """A small H.264 clip of moving gradients (made here, like PyAV's own tests do): MP4, or MPEG-TS for .ts.
    A key frame every 5 frames; ``bframes: 0`` encodes as most cameras do, without B-frames."""
    import av

    options = {"movflags": "frag_keyframe+empty_moov"} if fragmented else {}
    container_format = "mpegts" if path.suffix == ".ts" else "mp4"
    with av.open(str(path), "w", format=container_format, options=options) as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"g": "5", **({"bf": str(bframes)} if bframes is not None else {})}
        for i in range(frames):
            x = np.linspace(0, 255, size[0], dtype=np.float32)[None, :, None]
            image = np.broadcast_to((x + i * 7) % 255, (size[1], size[0], 3)).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path



def unit_vector(seed: int, dim: int = 16) -> np.ndarray:
    """A random L2-normalised float32 vector: an embedding for store tests."""
    v = np.random.default_rng(seed).normal(size=dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


def noise_crop(seed: int) -> np.ndarray:
    """A random 112x112 BGR image: a face crop for store tests."""
    return np.random.default_rng(seed).integers(0, 255, (112, 112, 3), np.uint8)


@contextlib.contextmanager
def static_http_server(directory: Path):
    """Serves ``directory`` over HTTP on a free loopback port; yields the base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def count_frames(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture(scope="session")
def cpu():
    from engines import Device

    return Device("cpu")


@pytest.fixture(scope="session")
def haar(cpu):
    from streamer.detect.haar import HaarConfig, HaarDetector

    return HaarDetector(HaarConfig(), cpu)


@pytest.fixture(scope="session")
def sprites():
    from streamer.demo import make_sprites

    return make_sprites()


from tests.mqtt_broker import mqtt_broker  # noqa: E402,F401  (a real MQTT broker)
from tests.postgres import postgres_server, postgres_url  # noqa: E402,F401  (a real PostgreSQL server)
from tests.ray_cluster import ray_cluster  # noqa: E402,F401  (a real local Ray cluster)
from tests.rtsp import rtsp_server  # noqa: E402,F401  (fixture for the stream tests)
