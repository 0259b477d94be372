"""Events as JSON lines, one object per line, flushed as written.

Each event is a change a consumer can act on: a face track started, its
identity was decided or changed, its occlusion appeared or cleared, it ended.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import IO


class JsonLinesEvents:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[str] | None = path.open("w", encoding="utf-8")
        self._lock = threading.Lock()
        self.count = 0

    def emit(self, event: dict) -> None:
        line = json.dumps(event, separators=(",", ":"), sort_keys=False)
        with self._lock:
            if self._file is None:
                return
            self._file.write(line + "\n")
            self._file.flush()  # a crash loses at most the line being written
            self.count += 1

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
