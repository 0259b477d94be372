"""A `streamer run` in a process of its own, as an operator or a service manager starts it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.paths import ROOT


class StreamerProcess:
    """Starts ``streamer run CONFIG ARGS``; collects stderr lines as they come (the live view's URL is one)."""

    def __init__(self, config: Path, *args: str, env: dict | None = None):
        self.proc = subprocess.Popen([sys.executable, "-m", "streamer", "run", str(config), *args], cwd=ROOT,
                                     text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**os.environ, **(env or {})})
        # Each pipe has one reader of its own, for the whole run: a second reader of stderr (communicate()) would
        # take whichever lines it happened to read first, and they would be missing here.
        self.lines: list[str] = []
        self._out: list[str] = []
        self._readers = [threading.Thread(target=lambda: self.lines.extend(self.proc.stderr), daemon=True),
                         threading.Thread(target=lambda: self._out.extend(self.proc.stdout), daemon=True)]
        for reader in self._readers:
            reader.start()
        self.stdout = ""

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, pattern: str, seconds: float = 90) -> re.Match:
        """The first stderr line matching ``pattern``; start-up (model loading) takes seconds."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for line in list(self.lines):
                match = re.search(pattern, line)
                if match:
                    return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r} in {seconds} s:\n{self.stderr}")

    def live_view_url(self) -> str:
        return self.wait_for_line(r"live view: (http://\S+)").group(1)

    def finish(self, timeout: float = 120) -> int:
        self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        self.stdout = "".join(self._out)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))


def get_json(url: str, timeout: float = 10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def get_text(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def call(method: str, url: str, body=None, headers: dict | None = None) -> tuple[int, dict]:
    """An API request with a JSON body (if any): (status, JSON answer), errors included."""
    data = json.dumps(body).encode() if body is not None else None
    base = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=data, method=method, headers={**base, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}
