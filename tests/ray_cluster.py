"""A real local Ray cluster for the tests: a head and a second node, both on this machine (127.0.0.1), started
with Ray's own `ray start`. The second node can be killed like a machine that is lost."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.rtsp import free_port

# A lost node is noticed in about 2 s rather than Ray's default 15 s (its health checks, set on the head).
FAST_HEALTH_CHECKS = {"RAY_health_check_period_ms": "500", "RAY_health_check_timeout_ms": "500",
                      "RAY_health_check_failure_threshold": "3", "RAY_USAGE_STATS_ENABLED": "0"}


def _ray() -> str | None:
    found = Path(sys.executable).parent / "ray"
    return str(found) if found.exists() else shutil.which("ray")


class RayCluster:
    def __init__(self, ray: str):
        self.ray = ray
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, **FAST_HEALTH_CHECKS}
        self._start("--head", f"--port={self.port}", "--include-dashboard=false", "--disable-usage-stats")
        self._start(f"--address={self.address}", '--resources={"second_node": 1}')
        self._wait_for_nodes(2)

    def _start(self, *args: str) -> None:
        subprocess.run([self.ray, "start", "--node-ip-address=127.0.0.1", "--num-cpus=2", *args], env=self.env,
                       check=True, capture_output=True, timeout=120)

    def _wait_for_nodes(self, count: int) -> None:
        script = ("import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
                  "print(sum(n['Alive'] for n in ray.nodes()))")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = subprocess.run([sys.executable, "-c", script, self.address], env=self.env, capture_output=True,
                                 text=True, timeout=60).stdout.strip()
            if out == str(count):
                return
            time.sleep(0.5)
        raise RuntimeError(f"the Ray cluster did not reach {count} nodes")

    def second_raylet(self) -> int:
        """The second node's raylet process (its resources name it)."""
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                except OSError:
                    continue
                if cmdline.split(b"\0")[0].endswith(b"/raylet") and b"second_node" in cmdline:
                    return int(entry)
        raise RuntimeError("the second node's raylet is not running")

    def kill_second_node(self) -> None:
        """kill -9 of the second node's raylet: the machine is gone, and with it the workers it held."""
        os.kill(self.second_raylet(), signal.SIGKILL)

    def stop(self) -> None:
        subprocess.run([self.ray, "stop", "--force"], env=self.env, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def ray_cluster():
    ray = _ray()
    if ray is None:
        pytest.skip("Ray is not installed (pip install 'streamer[cluster]')")
    cluster = RayCluster(ray)
    try:
        yield cluster
    finally:
        cluster.stop()
