"""Starts and abuses the real RTSP server in tests/servers/rtsp_server.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.paths import SHARED

SERVER = Path(__file__).parent / "servers" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"
_CHECK = 'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import GstRtspServer'


def rtsp_available() -> tuple[bool, str]:
    if not os.path.exists(SYSTEM_PYTHON):
        return False, f"{SYSTEM_PYTHON} not found"
    result = subprocess.run([SYSTEM_PYTHON, "-c", _CHECK], capture_output=True, text=True)
    if result.returncode:
        return False, "gst-rtsp-server is not installed (make test installs it: see TEST_PACKAGES in the Makefile)"
    return True, ""


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (openssl, from Debian): (certificate + key PEM for the
    server, certificate alone for a client's ``ca_file``)."""
    cert, key, pem = folder / "cert.pem", folder / "key.pem", folder / "server.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    pem.write_text(cert.read_text() + key.read_text())
    return pem, cert


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    def __init__(self, video: Path | None, user: str | None = None, password: str | None = None, width: int = 640,
                 record: Path | None = None, tls_cert: Path | None = None):
        """Serves ``video``; or, with ``record``, accepts a pushed H.264 stream into that .ts file.
        With ``tls_cert`` (a PEM file holding certificate and key) it speaks rtsps:// only."""
        self.video, self.user, self.password, self.width, self.record = video, user, password, width, record
        self.tls_cert = tls_cert
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def url(self, user: str | None = None, password: str | None = None) -> str:
        user, password = user or self.user, password or self.password
        auth = f"{quote(user, safe='')}:{quote(password, safe='')}@" if user else ""
        scheme = "rtsps" if self.tls_cert else "rtsp"
        return f"{scheme}://{auth}127.0.0.1:{self.port}/cam"

    def start(self, width: int | None = None) -> RtspServer:
        args = [SYSTEM_PYTHON, str(SERVER), "--port", str(self.port), "--width", str(width or self.width)]
        args += ["--record", str(self.record)] if self.record else ["--file", str(self.video)]
        if self.tls_cert:
            args += ["--tls-cert", str(self.tls_cert)]
        if self.user:
            args += ["--user", self.user, "--password", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.strip() == "ready":
                return self
            if self.proc.poll() is not None:
                break
        raise RuntimeError(f"the RTSP server did not start on port {self.port}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a stopped process cannot die until it runs
            self.proc.kill()
            self.proc.wait(10)

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)


@pytest.fixture()
def rtsp_server():
    ok, why = rtsp_available()
    if not ok:
        pytest.skip(why)
    video = SHARED / "data" / "video" / "intel_one-by-one-person-detection.mp4"
    servers: list[RtspServer] = []

    def make(**kwargs) -> RtspServer:
        if not kwargs.get("record") and not video.exists():
            pytest.skip(f"needs {video}")
        server = RtspServer(video, **kwargs)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.kill()
