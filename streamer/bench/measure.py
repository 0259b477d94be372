"""Peak memory of the measuring process: RSS from the kernel, GPU memory sampled from nvidia-smi."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import threading


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _gpu_used_mb() -> tuple[float | None, str]:
    """This process's GPU memory if nvidia-smi lists it; else the whole GPU's (in a container the
    process is often listed under the host's PID, or not at all)."""
    try:
        apps = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=5).stdout
        for line in apps.splitlines():
            pid, used = (part.strip() for part in line.split(","))
            if pid == str(os.getpid()):
                return float(used), "process"
        total = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                               capture_output=True, text=True, timeout=5).stdout.split()
        return (float(total[0]), "device") if total else (None, "")
    except (OSError, ValueError, subprocess.SubprocessError):
        return None, ""


class GpuMemorySampler:
    """Samples GPU memory every ``every_s`` while running; ``peak_mb`` is None without nvidia-smi."""

    def __init__(self, every_s: float = 0.5):
        self.every_s = every_s
        self.peak_mb: float | None = None
        self.scope = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuMemorySampler:
        if shutil.which("nvidia-smi"):
            self._thread = threading.Thread(target=self._run, name="gpu-memory", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _run(self) -> None:
        while True:
            used, scope = _gpu_used_mb()
            if used is not None and (self.peak_mb is None or used > self.peak_mb):
                self.peak_mb, self.scope = used, scope
            if self._stop.wait(self.every_s):
                return
