"""The clips a benchmark runs on: the demo generator's (a known number of faces per frame) or given files."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import av

from streamer.errors import SourceError


@dataclass(frozen=True)
class Clip:
    label: str
    path: Path
    width: int
    height: int
    fps: float
    frames: int
    faces_per_frame: int | None = None  # known for generated clips
    gallery: Path | None = None

    def as_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> Clip:
        gallery = Path(data["gallery"]) if data["gallery"] else None
        return cls(**{**data, "path": Path(data["path"]), "gallery": gallery})


def probe(path: Path, label: str | None = None) -> Clip:
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            frames = stream.frames or int(float(container.duration or 0) / 1e6 * fps)
            return Clip(label or path.name, path, stream.width, stream.height, fps, frames)
    except (av.FFmpegError, IndexError) as exc:
        raise SourceError(f"bench clip {path}: cannot be read as a video ({exc})") from None


def demo_clip(cache: Path, faces: int, size: tuple[int, int], frames: int, fps: int) -> Clip:
    """The demo scene with ``faces`` faces in every frame, built once per parameter set."""
    from streamer.demo import build_demo

    width, height = size
    folder = cache / f"demo-{faces}faces-{width}x{height}-{fps}fps-{frames}"
    if not (folder / "ground_truth.json").is_file():
        build_demo(folder, frames=frames, size=size, fps=fps, faces=faces)
    return Clip(f"demo {faces} faces {width}x{height}", folder / "demo.mp4", width, height, fps, frames,
                faces_per_frame=faces, gallery=folder / "gallery")
