"""Builds the demo input at run time from images that ship inside installed packages.

Faces from insightface's sample images (Tom Hanks, the group photo t1.jpg)
and scikit-image's astronaut move over a synthetic scene; some wear drawn
occluders (a surgical-style face mask, sunglasses, a hand). The ground truth
(who is where, wearing what) is written beside the clip, and the unoccluded
faces form the demo gallery, so the output can be checked, not just watched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from streamer.errors import StreamerError

SPRITE_PX = 160


@dataclass
class Sprite:
    name: str
    image: np.ndarray  # (SPRITE_PX, SPRITE_PX, 3) uint8 BGR, the unoccluded face
    landmarks: np.ndarray  # (5, 2) in sprite pixels
    occluder: str | None = None


def _package_images() -> dict[str, np.ndarray]:
    import insightface
    import skimage

    images = {}
    root = Path(insightface.__file__).parent / "data" / "images"
    for name in ("t1.jpg", "Tom_Hanks_54745.png"):
        image = cv2.imread(str(root / name))
        if image is None:
            raise StreamerError(f"demo: cannot read {root / name} (part of the insightface package)")
        images[name] = image
    astronaut = Path(skimage.__file__).parent / "data" / "astronaut.png"
    image = cv2.imread(str(astronaut))
    if image is None:
        raise StreamerError(f"demo: cannot read {astronaut} (part of the scikit-image package)")
    images["astronaut.png"] = image
    return images


def _square(image: np.ndarray, box, scale: float) -> np.ndarray:
    x1, y1, x2, y2 = box
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2 + 0.05 * (y2 - y1), scale * max(x2 - x1, y2 - y1) / 2
    matrix = np.float32([[SPRITE_PX / (2 * half), 0, -(cx - half) * SPRITE_PX / (2 * half)],
                         [0, SPRITE_PX / (2 * half), -(cy - half) * SPRITE_PX / (2 * half)]])
    return cv2.warpAffine(image, matrix, (SPRITE_PX, SPRITE_PX), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def make_sprites() -> list[Sprite]:
    """Face sprites cut from the package images.

    Always with the default Haar cascade, whatever the run's config, so the clip is the same for
    every detector that is measured on it.
    """
    from engines import Device
    from streamer.align import ARCFACE_112
    from streamer.detect.haar import HaarConfig, HaarDetector

    detector = HaarDetector(HaarConfig(), Device("cpu"))

    images = _package_images()
    hanks = cv2.resize(images["Tom_Hanks_54745.png"], (SPRITE_PX, SPRITE_PX), interpolation=cv2.INTER_CUBIC)
    # This image is itself a 112-px ArcFace-aligned face: its landmarks are the template, exactly.
    sprites = [Sprite("tom_hanks", hanks, ARCFACE_112 * (SPRITE_PX / 112), occluder="hand")]
    candidates = []
    astro = images["astronaut.png"]
    found = detector.detect(astro)
    if len(found):
        candidates.append(("eileen_collins", _square(astro, found.boxes[int(found.scores.argmax())], 1.7)))
    group = images["t1.jpg"]
    found = detector.detect(group)
    order = np.argsort(-(found.boxes[:, 2] - found.boxes[:, 0]))
    for rank, i in enumerate(order[:2]):
        candidates.append((f"group_photo_{rank + 1}", _square(group, found.boxes[i], 1.7)))
    for name, image in candidates:
        faces = detector.detect(image)
        if len(faces) == 0:
            continue
        best = int(np.argmax((faces.boxes[:, 2] - faces.boxes[:, 0]) * faces.scores))
        sprites.append(Sprite(name, image, faces.landmarks[best]))
    if len(sprites) < 3:
        raise StreamerError(f"demo: found faces in only {len(sprites)} of the package images; cannot build the demo")
    for sprite, occluder in zip(sprites[1:], ("sunglasses", "face_mask", None)):
        sprite.occluder = occluder
    return sprites


def draw_occluder(image: np.ndarray, landmarks: np.ndarray, kind: str) -> np.ndarray:
    """Draws ``kind`` on a copy of ``image`` at the face given by 5 ``landmarks``."""
    out = image.copy()
    le, re_, nose, lm, rm = landmarks.astype(np.float32)
    eye_dist = float(np.linalg.norm(re_ - le))
    eye_mid, mouth_mid = (le + re_) / 2, (lm + rm) / 2
    down = (mouth_mid - eye_mid) / max(np.linalg.norm(mouth_mid - eye_mid), 1e-6)
    right = (re_ - le) / max(eye_dist, 1e-6)
    if kind == "face_mask":
        top = nose - down * 0.3 * eye_dist
        chin = mouth_mid + down * 0.75 * eye_dist
        w = 1.05 * eye_dist
        poly = np.array([top - right * w * 0.8, top + right * w * 0.8, top + right * w + down * 0.5 * eye_dist,
                         chin + right * w * 0.6, chin - right * w * 0.6, top - right * w + down * 0.5 * eye_dist])
        cv2.fillPoly(out, [poly.astype(np.int32)], (235, 205, 150), cv2.LINE_AA)
        for k in (0.3, 0.55, 0.8):  # pleats
            a = top + down * k * np.linalg.norm(chin - top)
            cv2.line(out, tuple((a - right * w * 0.9).astype(int)), tuple((a + right * w * 0.9).astype(int)),
                     (200, 170, 120), 2, cv2.LINE_AA)
    elif kind == "sunglasses":
        axes = (int(0.42 * eye_dist), int(0.28 * eye_dist))
        angle = float(np.degrees(np.arctan2(right[1], right[0])))
        for centre in (le, re_):
            cv2.ellipse(out, tuple(centre.astype(int)), axes, angle, 0, 360, (25, 25, 30), -1, cv2.LINE_AA)
        cv2.line(out, tuple((le + right * axes[0]).astype(int)), tuple((re_ - right * axes[0]).astype(int)),
                 (25, 25, 30), max(2, int(eye_dist * 0.08)), cv2.LINE_AA)
    elif kind == "hand":
        skin = (60, 105, 170)  # a darker hand tone than the face's
        palm = mouth_mid + right * 1.0 * eye_dist
        cv2.ellipse(out, tuple(palm.astype(int)), (int(0.5 * eye_dist), int(0.6 * eye_dist)),
                    0, 0, 360, skin, -1, cv2.LINE_AA)
        for f in range(4):  # fingers laid across the mouth from the side, nose tip to chin
            base = palm + down * (-0.45 + 0.3 * f) * eye_dist
            tip = base - right * (1.6 - 0.15 * abs(f - 1.5)) * eye_dist
            cv2.line(out, tuple(base.astype(int)), tuple(tip.astype(int)), skin, max(3, int(0.22 * eye_dist)),
                     cv2.LINE_AA)
    else:
        raise ValueError(f"unknown occluder {kind!r}: expected face_mask, sunglasses or hand")
    return out


def _scene(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A dim corridor: gradient walls, floor, a few static shapes (no faces)."""
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    scene = (np.array([70, 60, 55], np.float32) * (1 - y) + np.array([120, 125, 130], np.float32) * y)
    scene = np.broadcast_to(scene, (height, width, 3)).copy()
    for _ in range(6):
        x1, y1 = int(rng.integers(0, width - 80)), int(rng.integers(0, height - 80))
        colour = rng.integers(40, 160, 3).tolist()
        cv2.rectangle(scene, (x1, y1), (x1 + int(rng.integers(40, 200)), y1 + int(rng.integers(30, 160))), colour, -1)
    scene += rng.normal(0, 3, scene.shape).astype(np.float32)
    return np.clip(scene, 0, 255).astype(np.uint8)


def _alpha(size: int) -> np.ndarray:
    alpha = np.zeros((size, size), np.float32)
    cv2.ellipse(alpha, (size // 2, size // 2), (int(size * 0.44), int(size * 0.49)), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(alpha, (21, 21), 0)[..., None]


def build_demo(out_dir: Path, frames: int = 120, size: tuple[int, int] = (1280, 720),
               fps: int = 15, seed: int = 0, faces: int | None = None) -> dict:
    """Writes ``demo.mp4``, ``gallery/<name>.png`` and ``ground_truth.json`` under ``out_dir``.

    ``faces``: how many faces each frame holds (default: one per sprite, 4). More than there are
    sprites repeats them; up to 4 lanes of faces, each lane split into as many slots as it holds.
    """
    import av

    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    gallery = out_dir / "gallery"
    gallery.mkdir(exist_ok=True)
    unique = make_sprites()
    for sprite in unique:
        cv2.imwrite(str(gallery / f"{sprite.name}.png"), sprite.image)
    count = len(unique) if faces is None else faces
    sprites = [unique[k % len(unique)] for k in range(count)]
    width, height = size
    scene = _scene(width, height, rng)
    alpha = _alpha(SPRITE_PX)
    lane_count = min(count, 4)
    per_lane = -(-count // lane_count) if count else 1
    slot = width // per_lane  # each face bounces within its own slot of its lane
    if slot < SPRITE_PX or height < lane_count * SPRITE_PX:
        raise StreamerError(f"demo: {count} faces of {SPRITE_PX} px do not fit in {width}x{height}")
    lanes = np.linspace(20, height - SPRITE_PX - 20, lane_count)[np.arange(count) % lane_count]
    offsets = slot * (np.arange(count) // lane_count)
    starts = rng.uniform(0, slot - SPRITE_PX, count)
    speeds = rng.choice([-1, 1], count) * rng.uniform(2.0, 4.0, count)
    drawn = [draw_occluder(s.image, s.landmarks, s.occluder) if s.occluder else s.image for s in sprites]
    truth = {"clip": "demo.mp4", "frames": frames, "fps": fps, "size": [width, height],
             "faces": [{"identity": s.name, "occluder": s.occluder, "boxes": []} for s in sprites]}
    path = out_dir / "demo.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for t in range(frames):
            canvas = scene.astype(np.float32)
            for k, (sprite, image) in enumerate(zip(sprites, drawn)):
                span = slot - SPRITE_PX
                x = starts[k] + speeds[k] * t
                x = int(offsets[k] + (abs((x % (2 * span)) - span) if span else 0))  # bounce within the slot
                y = int(lanes[k] + 6 * np.sin(t / 9 + k))
                roi = canvas[y : y + SPRITE_PX, x : x + SPRITE_PX]
                roi[:] = roi * (1 - alpha) + image.astype(np.float32) * alpha
                lm = sprite.landmarks + [x, y]
                truth["faces"][k]["boxes"].append([round(float(v), 1) for v in (*lm.min(0), *lm.max(0))])
            frame = av.VideoFrame.from_ndarray(canvas.astype(np.uint8), format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    (out_dir / "ground_truth.json").write_text(json.dumps(truth, indent=1))
    return truth
