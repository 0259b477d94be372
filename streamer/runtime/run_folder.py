"""Each run writes into a folder of its own, so no run ever overwrites or mixes into another's files.

``OUTPUT_DIR/runs/<UTC start time, to the millisecond>-<8 hex>/`` holds the run's recordings,
``events.jsonl`` and ``run.json`` (what ran, when, how it ended, what it wrote); the names list in the order
the runs started. The folder is made with an exclusive ``mkdir``: two runs started in the same millisecond
into the same output folder still get their own.
``OUTPUT_DIR/latest`` points at the newest run. The store (``OUTPUT_DIR/streamer.db`` by default)
is shared by the runs: it is what lasts between them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from pathlib import Path

from streamer.errors import OutputError

MANIFEST = "run.json"


class RunFolder:
    def __init__(self, root: Path, path: Path):
        self.root, self.path = root, path
        self.id = path.name

    @classmethod
    def create(cls, root: Path) -> RunFolder:
        """A new, empty folder under ``root/runs``; ``OutputError`` names the folder if it cannot be made."""
        runs = root / "runs"
        try:
            runs.mkdir(parents=True, exist_ok=True)
            for _ in range(100):
                # To the millisecond: runs started in the same second still list in the order they started.
                now = dt.datetime.now(dt.timezone.utc)
                path = runs / f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z-{secrets.token_hex(4)}"
                try:
                    path.mkdir()
                except FileExistsError:
                    continue
                return cls(root, path)
        except OSError as exc:
            raise OutputError(f"output.dir: cannot create a run folder in {runs}: {exc.strerror or exc}") from None
        raise OutputError(f"output.dir: no free run folder name in {runs}")

    def write_manifest(self, manifest: dict) -> None:
        """``run.json``, replaced atomically: a reader never sees half of it."""
        target = self.path / MANIFEST
        temporary = target.with_suffix(".json.tmp")
        try:
            temporary.write_text(json.dumps(manifest, indent=1, default=str))
            os.replace(temporary, target)
        except OSError as exc:
            raise OutputError(f"output: cannot write {target}: {exc.strerror or exc}") from None

    def link_latest(self) -> None:
        """``root/latest`` -> this run (best effort: some file systems have no symbolic links)."""
        link = self.root / "latest"
        temporary = self.root / f".latest-{self.id}"
        try:
            temporary.symlink_to(Path("runs") / self.id, target_is_directory=True)
            os.replace(temporary, link)
        except OSError:
            temporary.unlink(missing_ok=True)
