"""Events as JSON lines, one object per line, flushed as written.

Each event is a change a consumer can act on: a face track started, its identity was decided or
changed, its occlusion appeared or cleared, it ended. Each carries its ``sighting`` (its row in the
store, committed before it is written here).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from streamer.errors import OutputError
from streamer.records import Sighting


class JsonLinesEvents:
    def __init__(self, path: Path):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # "x": a run's events file is its own; it never continues or replaces another run's.
            self._file: IO[str] | None = path.open("x", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"output: cannot create {path}: {exc.strerror or exc}") from None
        self.count = 0

    def emit(self, sightings: Sequence[Sighting]) -> None:
        if self._write([s.json for s in sightings]):
            self.count += len(sightings)

    def alert(self, alerts: list[dict]) -> None:
        """Alerts are lines too (``"type": "alert"``), among the events that raised them."""
        self._write(alerts)

    def _write(self, objects: list[dict]) -> bool:
        if self._file is None or not objects:
            return False
        try:
            self._file.write("".join(json.dumps(o, separators=(",", ":")) + "\n" for o in objects))
            self._file.flush()  # a crash loses at most the lines being written
        except OSError as exc:
            raise OutputError(f"output: cannot write {self.path}: {exc.strerror or exc}") from None
        return True

    def close(self, drain: bool = True) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                raise OutputError(f"output: cannot finish {self.path}: {exc.strerror or exc}") from None

    def outcome(self) -> str:
        return f"events: {self.path} ({self.count} events)"
