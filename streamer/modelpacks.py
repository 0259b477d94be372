"""Known model packs and ``streamer models pull``: download over HTTPS, SHA-256 check, safe unzip.

Nothing here runs unless a user asks for it: the pipeline never downloads.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from streamer.errors import ModelError
from streamer.redaction import redact_url

INSIGHTFACE_RELEASE = "https://github.com/deepinsight/insightface/releases/download/v0.7/"
# OpenCV Zoo's YuNet at a fixed revision (a file stored in Git LFS: media.githubusercontent.com serves its bytes).
OPENCV_ZOO_YUNET = ("https://media.githubusercontent.com/media/opencv/opencv_zoo/26cc381e4d2594bb9f47a26eb8fd96c94a13660d"
                    "/models/face_detection_yunet/face_detection_yunet_2026may.onnx")


@dataclass(frozen=True)
class ModelPack:
    name: str
    url: str
    sha256: str | None  # None: the digest is not pinned here; the user must pass --sha256
    contents: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


# Digests as published by other projects that pin these archives; not re-verified from this
# (offline) development machine.
KNOWN_PACKS = {
    p.name: p
    for p in [
        ModelPack("buffalo_l", INSIGHTFACE_RELEASE + "buffalo_l.zip", None,
                  "SCRFD-10GF detector (det_10g) + ArcFace R50 (w600k_r50), 2d106/3d68 landmarks, genderage"),
        ModelPack("buffalo_m", INSIGHTFACE_RELEASE + "buffalo_m.zip",
                  "d98264bd8f2dc75cbc2ddce2a14e636e02bb857b3051c234b737bf3b614edca9",
                  "SCRFD-2.5GF detector (det_2.5g) + ArcFace R50 (w600k_r50)"),
        ModelPack("buffalo_s", INSIGHTFACE_RELEASE + "buffalo_s.zip",
                  "d85a87f503f691807cd8bb97128bdf7a0660326cd9cd02657127fa978bab8b5e",
                  "SCRFD-500MF detector (det_500m) + MobileFaceNet (w600k_mbf)"),
        ModelPack("antelopev2", INSIGHTFACE_RELEASE + "antelopev2.zip",
                  "8e182f14fc6e80b3bfa375b33eb6cff7ee05d8ef7633e738d1c89021dcf0c5c5",
                  "SCRFD-10GF detector + ArcFace R100 Glint360K (glintr100)"),
        # The one pack of the list that allows commercial use (MIT); one .onnx, not an archive. Its digest is the
        # file measured here (benchmarks/dlib_choice.py) and the one several projects pin for that address.
        ModelPack("yunet", OPENCV_ZOO_YUNET, "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
                  "YuNet face detector with 5 landmarks, MIT licence (detector: {backend: yunet, model: FOLDER})"),
    ]
}


def models_dir() -> Path:
    return Path(os.environ.get("STREAMER_MODELS", Path.home() / ".cache" / "streamer" / "models"))


def installed(pack: ModelPack, root: Path) -> list[Path]:
    folder = root / pack.name
    return sorted(folder.glob("*.onnx")) if folder.is_dir() else []


def pull(name: str, root: Path, url: str | None = None, sha256: str | None = None, mirror: str | None = None,
         progress=sys.stderr) -> Path:
    """Fetches pack ``name`` into ``root/name`` and returns that folder.

    ``url``/``sha256`` override the catalog (any pack name then works);
    ``mirror`` replaces the catalog's base address but keeps its pinned digest.
    """
    pack = KNOWN_PACKS.get(name)
    if pack is None and url is None:
        raise ModelError(f"unknown model pack {name!r}: known packs are {', '.join(KNOWN_PACKS)} (or pass --url)")
    source = url or (mirror.rstrip("/") + "/" + pack.filename if mirror else pack.url)
    expected = (sha256 or (pack.sha256 if pack else None) or "").lower()
    if not expected:
        raise ModelError(f"model pack {name!r} has no pinned SHA-256 here: pass --sha256 with the digest you trust")
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise ModelError(f"--sha256 must be 64 hex digits, got {expected!r}")
    target = root / name
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}.") as tmp:
        archive = Path(tmp) / "download"
        actual = _download(source, archive, progress)
        if actual != expected:
            raise ModelError(
                f"SHA-256 mismatch for {redact_url(source)}: expected {expected}, got {actual}; nothing installed"
            )
        staged = Path(tmp) / name
        if source.lower().endswith(".onnx"):  # a model file itself, not an archive of them
            staged.mkdir()
            archive.rename(staged / Path(source.split("?", 1)[0]).name)
        else:
            _extract_onnx(archive, staged, source)
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    return target


def _download(url: str, path: Path, progress) -> str:
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=30) as response, path.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress and total:
                    progress.write(f"\rdownloading {path.parent.name.split('.')[1]}: {done >> 20}/{total >> 20} MiB")
            if progress and total:
                progress.write("\n")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ModelError(f"cannot download {redact_url(url)}: {reason}") from None
    return digest.hexdigest()


def _extract_onnx(archive: Path, dest: Path, source: str) -> None:
    """Extracts the .onnx members only, flattened, refusing anything that is not a plain file."""
    dest.mkdir()
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir() and m.filename.lower().endswith(".onnx")]
            if not members:
                raise ModelError(f"{redact_url(source)} holds no .onnx model")
            for member in members:
                name = Path(member.filename).name  # flatten: no path from the archive is trusted
                with zf.open(member) as src, (dest / name).open("wb") as out:
                    shutil.copyfileobj(src, out)
    except zipfile.BadZipFile:
        raise ModelError(f"{redact_url(source)} is not a zip archive") from None
