"""A real PostgreSQL server for the tests: Debian's postgresql package (initdb, postgres), started on a free
loopback port with password authentication, stopped and started again by the tests that need a restart.

As root (CI), the server runs as the ``postgres`` user: PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.rtsp import free_port

PASSWORD = "s3cret-Pa55-" + uuid.uuid4().hex[:8]  # what no log, error or page may show


def _binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


class PostgresServer:
    def __init__(self, root: Path, binaries: Path):
        self.root, self.binaries = root, binaries
        self.data, self.sockets = root / "data", root / "sockets"
        self.port = free_port()
        self.as_user = "postgres" if os.geteuid() == 0 else None
        self.sockets.mkdir()
        pwfile = root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        self._own(root, pwfile, self.sockets)
        (root / "log").touch()
        self._own(root / "log")
        self._run(self.binaries / "initdb", "-D", str(self.data), "-U", "streamer", "--auth=scram-sha-256",
                  f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8")
        self.start()

    def _own(self, *paths: Path) -> None:
        if self.as_user:
            entry = pwd.getpwnam(self.as_user)
            for path in paths:
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def _command(self, *args: str) -> list[str]:
        return (["runuser", "-u", self.as_user, "--"] if self.as_user else []) + list(args)

    def _run(self, *args) -> None:
        subprocess.run(self._command(*map(str, args)), check=True, capture_output=True, timeout=120)

    def url(self, database: str = "postgres", password: str | None = PASSWORD) -> str:
        secret = f":{password}" if password is not None else ""
        return f"postgresql://streamer{secret}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(self.binaries / "pg_ctl", "start", "-w", "-t", "60", "-D", self.data, "-l", self.root / "log",
                  "-o", options)

    def stop(self) -> None:
        """A fast shutdown: clients are disconnected, as when a database server restarts."""
        self._run(self.binaries / "pg_ctl", "stop", "-m", "fast", "-D", self.data)

    def create_database(self) -> str:
        import psycopg

        name = "t" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_server():
    binaries = _binaries()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (make system-deps installs Debian's postgresql)")
    pytest.importorskip("psycopg")
    root = Path(tempfile.mkdtemp(prefix="streamer-pg-", dir="/tmp"))
    os.chmod(root, 0o755)
    server = PostgresServer(root, binaries)
    try:
        yield server
    finally:
        try:
            server.stop()
        except subprocess.CalledProcessError:
            pass  # stopped already
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A new, empty database on the test server: its URL, password included."""
    return postgres_server.create_database()
