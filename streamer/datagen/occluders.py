"""Occluders drawn onto a face in its own frame: image templates where there are some, procedural shapes for the rest.

Every occluder is a ``Layer``: colour and alpha over the whole canvas, placed by the face's 5
landmarks (``FaceFrame``). Its pixel mask is exact by construction (alpha > 0.5), which is what the
research did by pasting occluder images onto faces and taking the mask from the difference.

Templates (optional, ``OccluderLibrary(folder)``): MaskTheFace's face masks with the anchor points
of its ``masks.cfg``, sunglasses PNGs with alpha, and cloth textures. Without a folder every class
is still drawn procedurally, so the data engine runs anywhere.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from streamer.datagen.face_frame import FaceFrame

CLASSES = ("face_mask", "sunglasses", "eyeglasses", "hand", "scarf", "cap", "phone", "cup", "microphone")

# Where MaskTheFace's six anchors (a..f: upper left, nose bridge, upper right, lower left, chin,
# lower right) fall on a face, in FaceFrame units (eye distances across, eye-to-mouth distances down).
_MASK_ANCHORS = np.array([[-1.0, 0.42], [0.0, 0.28], [1.0, 0.42], [-0.86, 1.32], [0.0, 1.62], [0.86, 1.32]], np.float32)
_SKIN_TONES = np.array([[197, 224, 255], [160, 196, 234], [120, 160, 205], [90, 125, 170], [60, 85, 125],
                        [40, 60, 95]], np.float32)  # BGR, light to dark


@dataclass
class Layer:
    name: str  # occluder class, one of CLASSES
    color: np.ndarray  # (S, S, 3) float32 BGR 0..255
    alpha: np.ndarray  # (S, S) float32 0..1

    @property
    def mask(self) -> np.ndarray:
        return self.alpha > 0.5


@dataclass
class MaskTemplate:
    name: str
    rgba: np.ndarray
    anchors: np.ndarray  # (6, 2) pixel positions of a..f in the template
    view: str  # "front", "left" (nose bridge towards the image's left) or "right"


class OccluderLibrary:
    def __init__(self, folder: Path | None = None):
        self.mask_templates: list[MaskTemplate] = []
        self.glasses_templates: list[tuple[np.ndarray, np.ndarray]] = []  # (rgba, lens centres (2, 2))
        self.textures: list[np.ndarray] = []
        if folder is not None:
            self._load(Path(folder))

    def _load(self, folder: Path) -> None:
        config_file = folder / "masks" / "masks.cfg"
        if config_file.exists():
            parser = configparser.ConfigParser()
            parser.read(config_file)
            for name in parser.sections():
                path = folder / "masks" / f"{name}.png"
                if not path.exists() or "mask_a" not in parser[name]:
                    continue
                rgba = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
                if rgba is None or rgba.shape[2] != 4:
                    continue
                anchors = np.array([[float(v) for v in parser[name][f"mask_{k}"].split(",")] for k in "abcdef"],
                                   np.float32)
                view = "left" if name.endswith("_left") else "right" if name.endswith("_right") else "front"
                self.mask_templates.append(MaskTemplate(name, rgba, anchors, view))
        for path in sorted(folder.glob("*glass*.png")):
            rgba = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if rgba is not None and rgba.shape[2] == 4:
                self.glasses_templates.append((rgba, _lens_centres(rgba[:, :, 3])))
        for path in sorted((folder / "textures").glob("*.jpg")) if (folder / "textures").is_dir() else []:
            texture = cv2.imread(str(path))
            if texture is not None:
                self.textures.append(texture)

    def describe(self) -> str:
        return (f"{len(self.mask_templates)} face-mask templates, {len(self.glasses_templates)} sunglasses "
                f"templates, {len(self.textures)} textures, procedural shapes for every class")

    def draw(self, name: str, rng: np.random.Generator, face: FaceFrame, size: int, skin: np.ndarray) -> Layer:
        """One occluder of class ``name`` on a (size, size) canvas; ``skin`` is the face's own BGR skin tone."""
        color, alpha = _DRAWERS[name](self, rng, face, size, skin)
        return Layer(name, color, np.clip(alpha, 0, 1))

    # -- texture ---------------------------------------------------------------------------

    def fill(self, rng: np.random.Generator, size: int, base: np.ndarray | None = None) -> np.ndarray:
        """A (size, size, 3) float fill: plain, noisy, striped, checked or a library texture."""
        base = _random_color(rng) if base is None else np.asarray(base, np.float32)
        kind = rng.choice(["plain", "noise", "stripes", "check", "texture"], p=[0.3, 0.25, 0.15, 0.1, 0.2])
        fill = np.ones((size, size, 3), np.float32) * base
        if kind == "texture" and self.textures:
            texture = self.textures[rng.integers(len(self.textures))]
            scale = rng.uniform(0.3, 1.0)
            tile = cv2.resize(texture, None, fx=scale, fy=scale).astype(np.float32)
            reps = (size // tile.shape[0] + 1, size // tile.shape[1] + 1, 1)
            fill = np.tile(tile, reps)[:size, :size]
            if rng.random() < 0.5:  # recolour, keeping the weave
                fill = fill.mean(axis=2, keepdims=True) / 128.0 * base
        elif kind == "noise":
            noise = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), rng.uniform(0.5, 3))
            fill *= (1 + 0.25 * noise / (noise.std() + 1e-6))[..., None]
        elif kind in ("stripes", "check"):
            period = rng.uniform(4, 16)
            theta = rng.uniform(0, np.pi)
            yy, xx = np.mgrid[:size, :size].astype(np.float32)
            wave = np.sin((xx * np.cos(theta) + yy * np.sin(theta)) * 2 * np.pi / period) > 0
            if kind == "check":
                wave ^= np.sin((-xx * np.sin(theta) + yy * np.cos(theta)) * 2 * np.pi / period) > 0
            other = _random_color(rng)
            fill = np.where(wave[..., None], fill, other)
        return np.clip(fill, 0, 255)


# -- drawers: (library, rng, face, size, skin) -> (color, alpha) ----------------------------------


def _face_mask(lib: OccluderLibrary, rng, face: FaceFrame, size: int, skin):
    targets = _MASK_ANCHORS + rng.normal(0, 0.04, _MASK_ANCHORS.shape).astype(np.float32)
    targets[[1, 4], 0] += face.yaw * np.array([1.0, 0.8], np.float32)  # the bridge and chin follow the nose
    view = "left" if face.yaw < -0.08 else "right" if face.yaw > 0.08 else "front"
    candidates = [t for t in lib.mask_templates if t.view == view] or lib.mask_templates
    if candidates and rng.random() < 0.8:
        template = candidates[rng.integers(len(candidates))]
        homography, _ = cv2.findHomography(template.anchors, face.points(targets))
        rgba = cv2.warpPerspective(template.rgba, homography, (size, size), flags=cv2.INTER_LINEAR).astype(np.float32)
        color, alpha = rgba[:, :, :3], rgba[:, :, 3] / 255.0
        if rng.random() < 0.3:  # a fabric of another colour, keeping the template's folds
            shade = color.mean(axis=2, keepdims=True) / max(float(color[alpha > 0.5].mean()) if (alpha > 0.5).any()
                                                            else 128.0, 1.0)
            color = lib.fill(rng, size) * np.clip(shade, 0.3, 1.5)
        return color, alpha
    # Procedural: the six anchors joined by curved edges, pleats across.
    outline = _smooth_polygon(face.points(targets[[0, 1, 2, 5, 4, 3]]), rng, bulge=0.08)
    alpha = _polygon_alpha(outline, size)
    color = lib.fill(rng, size)
    yy = np.mgrid[:size, :size][0].astype(np.float32)
    pleats = 1 + 0.08 * np.sin(yy / max(face.eye_distance * 0.25, 1) * np.pi)
    return color * pleats[..., None], alpha


def _sunglasses(lib: OccluderLibrary, rng, face: FaceFrame, size: int, skin):
    if lib.glasses_templates and rng.random() < 0.5:
        rgba, lenses = lib.glasses_templates[rng.integers(len(lib.glasses_templates))]
        spread = rng.uniform(0.95, 1.15)
        eyes = np.stack([face.point(-0.5 * spread, rng.uniform(-0.08, 0.05)),
                         face.point(0.5 * spread, rng.uniform(-0.08, 0.05))])
        matrix = cv2.estimateAffinePartial2D(lenses, eyes)[0]
        warped = cv2.warpAffine(rgba, matrix, (size, size), flags=cv2.INTER_LINEAR).astype(np.float32)
        return warped[:, :, :3], warped[:, :, 3] / 255.0
    return _glasses(rng, face, size, tinted=True)


def _eyeglasses(lib: OccluderLibrary, rng, face: FaceFrame, size: int, skin):
    return _glasses(rng, face, size, tinted=False)


def _glasses(rng, face: FaceFrame, size: int, tinted: bool):
    """Two lenses, a bridge and the temples; tinted lenses are opaque, clear ones leave only the frame."""
    d = face.eye_distance
    half_w, half_h = rng.uniform(0.28, 0.38), rng.uniform(0.17, 0.28)
    y = rng.uniform(-0.05, 0.08)
    shape = rng.choice(["ellipse", "rect", "aviator"])
    frame_px = max(1, int(round(d * rng.uniform(0.03, 0.08))))
    alpha = np.zeros((size, size), np.float32)
    lens_alpha = np.zeros((size, size), np.float32)
    lens_polygons = []
    for side in (-1, 1):
        cx = side * rng.uniform(0.47, 0.55)
        if shape == "ellipse":
            t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
            pts = np.stack([cx + half_w * np.cos(t), y + half_h * 1.6 * np.sin(t)], 1)
        elif shape == "rect":
            pts = _rounded_rect(cx, y, half_w, half_h * 1.5, 0.35)
        else:  # aviator: wider at the top, dropping at the outer side
            t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
            drop = 1 + 0.35 * (np.sin(t) > 0) * (side * np.cos(t) > -0.3)
            pts = np.stack([cx + half_w * np.cos(t), y + half_h * 1.5 * np.sin(t) * drop], 1)
        lens_polygons.append(face.points(pts))
    for polygon in lens_polygons:
        cv2.polylines(alpha, [_fixed(polygon)], True, 1.0, frame_px, cv2.LINE_AA, shift=4)
        if tinted:
            cv2.fillPoly(lens_alpha, [_fixed(polygon)], 1.0, cv2.LINE_AA, shift=4)
    # bridge and temples
    bridge = face.points([[-0.5 + half_w, y - 0.05], [0, y - 0.1], [0.5 - half_w, y - 0.05]])
    cv2.polylines(alpha, [_fixed(bridge)], False, 1.0, frame_px, cv2.LINE_AA, shift=4)
    for side in (-1, 1):
        temple = face.points([[side * (0.5 + half_w), y - 0.1], [side * 1.2, y - 0.05]])
        cv2.polylines(alpha, [_fixed(temple)], False, 1.0, frame_px, cv2.LINE_AA, shift=4)
    frame_color = _random_color(rng, dark=rng.random() < 0.6)
    color = np.ones((size, size, 3), np.float32) * frame_color
    if tinted:
        lens_color = rng.uniform(5, 60, 3).astype(np.float32)
        gloss = _linear_gradient(rng, size, 0.7, 1.6)[..., None]
        lens = np.ones((size, size, 3), np.float32) * lens_color * gloss
        color = np.where(alpha[..., None] > 0.5, color, lens)
        alpha = np.maximum(alpha, lens_alpha * rng.uniform(0.9, 1.0))
    return color, alpha


def _hand(lib: OccluderLibrary, rng, face: FaceFrame, size: int, skin):
    """A palm with fingers over the mouth, an eye, a cheek or the chin."""
    tone = skin if rng.random() < 0.6 else _SKIN_TONES[rng.integers(len(_SKIN_TONES))]
    tone = np.clip(np.asarray(tone, np.float32) * rng.uniform(0.85, 1.15), 0, 255)
    where = rng.choice(["mouth", "eye", "cheek", "chin"], p=[0.45, 0.2, 0.2, 0.15])
    centre = {"mouth": (rng.uniform(-0.3, 0.3), rng.uniform(1.0, 1.4)),
              "eye": (rng.choice([-0.5, 0.5]) + rng.uniform(-0.15, 0.15), rng.uniform(0.0, 0.3)),
              "cheek": (rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.0), rng.uniform(0.5, 1.1)),
              "chin": (rng.uniform(-0.3, 0.3), rng.uniform(1.5, 1.9))}[where]
    angle = rng.uniform(-70, 70) + (180 if where == "chin" else 0)  # fingers up, or up from below the chin
    scale = rng.uniform(0.9, 1.4)
    palm = np.array([[-0.45, 0.0], [0.45, 0.0], [0.5, 0.7], [0.0, 0.85], [-0.5, 0.7]], np.float32) * scale
    fingers = []
    for i, length in enumerate(rng.uniform(0.55, 0.85, 4)):
        x = (-0.34 + i * 0.227) * scale
        fingers.append(np.array([[x, 0.05], [x + rng.uniform(-0.06, 0.06), -length * scale]], np.float32))
    thumb = np.array([[0.45 * scale, 0.45 * scale], [0.85 * scale, 0.05 * scale]], np.float32)
    rotation = cv2.getRotationMatrix2D((0, 0), angle, 1.0)[:, :2]

    def place(points):
        return face.points(points @ rotation.T + np.array(centre, np.float32))

    alpha = np.zeros((size, size), np.float32)
    cv2.fillPoly(alpha, [_fixed(place(palm))], 1.0, cv2.LINE_AA, shift=4)
    width = max(2, int(round(face.eye_distance * 0.2 * scale)))
    creases = np.zeros((size, size), np.float32)
    for finger in fingers + [thumb]:
        pts = _fixed(place(finger))
        cv2.polylines(alpha, [pts], False, 1.0, width, cv2.LINE_AA, shift=4)
        cv2.polylines(creases, [pts], False, 1.0, max(1, width // 6), cv2.LINE_AA, shift=4)
    creases = cv2.GaussianBlur(cv2.dilate(creases, np.ones((3, 3))) - creases, (0, 0), 0.8)
    shade = _linear_gradient(rng, size, 0.75, 1.1) * (1 - 0.35 * np.clip(creases, 0, 1))
    return np.ones((size, size, 3), np.float32) * tone * shade[..., None], alpha


def _scarf(lib: OccluderLibrary, rng, face: FaceFrame, size: int, skin):
    top = rng.uniform(0.3, 0.95)  # from the nose to the lower lip
    xs = np.linspace(-3, 3, 25, dtype=np.float32)
    wave = top + 0.06 * np.sin(xs * rng.uniform(2, 5) + rng.uniform(0, 6)) + 0.08 * xs**2 * rng.uniform(0, 0.3)
    outline = np.concatenate([np.stack([xs, wave], 1), [[3, 6], [-3, 6]]]).astype(np.float32)
    alpha = _polygon_alpha(face.points(outline), size)
    folds = 1 + 0.12 * np.sin(np.mgrid[:size, :size][1] / max(face.eye_distance * 0.3, 1) + rng.uniform(0, 6))
    return lib.fill(rng, size) * (folds * _linear_gradient(rng, size, 0.8, 1.1))[..., None], alpha


def _cap(lib: OccluderLibrary, rng, face: FaceFrame, size: int, skin):
    """A baseball cap (crown and brim) or a beanie, down to somewhere above the eyebrows."""
    bottom = rng.uniform(-0.75, -0.3)
    t = np.linspace(np.pi, 2 * np.pi, 30, dtype=np.float32)
    width = rng.uniform(1.15, 1.45)
    crown = np.stack([width * np.cos(t), bottom + 2.2 * np.sin(t)], 1)
    crown = np.concatenate([crown, [[width, bottom + 0.05], [-width, bottom + 0.05]]]).astype(np.float32)
    alpha = _polygon_alpha(face.points(crown), size)
    base = _random_color(rng)
    color = lib.fill(rng, size, base) * _linear_gradient(rng, size, 0.75, 1.1)[..., None]
    if rng.random() < 0.65:  # a brim in front
        b = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        brim = np.stack([rng.uniform(0.8, 1.1) * np.cos(b), bottom + rng.uniform(0.08, 0.22) * np.sin(b) + 0.05], 1)
        brim_alpha = _polygon_alpha(face.points(brim.astype(np.float32)), size)
        color = np.where(brim_alpha[..., None] > 0.5, color * 0.8, color)
        alpha = np.maximum(alpha, brim_alpha)
    return color, alpha


def _phone(lib: OccluderLibrary, rng, face: FaceFrame, size: int, skin):
    """A phone at the ear or held in front of the lower face."""
    if rng.random() < 0.5:
        centre = (rng.choice([-1, 1]) * rng.uniform(0.9, 1.3), rng.uniform(0.3, 0.9))
    else:
        centre = (rng.uniform(-0.5, 0.5), rng.uniform(0.9, 1.6))
    w, h = rng.uniform(0.35, 0.5), rng.uniform(0.7, 1.0)
    rotation = cv2.getRotationMatrix2D((0, 0), rng.uniform(-40, 40), 1.0)[:, :2]
    body = _rounded_rect(0, 0, w, h, 0.2) @ rotation.T + np.array(centre, np.float32)
    alpha = _polygon_alpha(face.points(body), size)
    case = _random_color(rng, dark=rng.random() < 0.7)
    color = np.ones((size, size, 3), np.float32) * case
    if rng.random() < 0.5:  # the screen side
        screen = _rounded_rect(0, 0, w * 0.85, h * 0.88, 0.1) @ rotation.T + np.array(centre, np.float32)
        screen_alpha = _polygon_alpha(face.points(screen), size)
        color = np.where(screen_alpha[..., None] > 0.5, rng.uniform(10, 200, 3).astype(np.float32), color)
    return color * _linear_gradient(rng, size, 0.8, 1.3)[..., None], alpha


def _cup(lib: OccluderLibrary, rng, face: FaceFrame, size: int, skin):
    cx, top = rng.uniform(-0.4, 0.4), rng.uniform(0.6, 1.1)
    w_top, w_bottom, height = rng.uniform(0.35, 0.55), rng.uniform(0.25, 0.45), rng.uniform(0.9, 1.5)
    body = np.array([[cx - w_top, top], [cx + w_top, top], [cx + w_bottom, top + height],
                     [cx - w_bottom, top + height]], np.float32)
    alpha = _polygon_alpha(face.points(body), size)
    t = np.linspace(0, 2 * np.pi, 30, endpoint=False)
    rim = np.stack([cx + w_top * np.cos(t), top + 0.08 * np.sin(t)], 1).astype(np.float32)
    alpha = np.maximum(alpha, _polygon_alpha(face.points(rim), size))
    side = rng.choice([-1, 1])
    handle = np.stack([cx + side * (w_top * 0.9 + 0.2 * np.sin(np.linspace(0, np.pi, 12))),
                       top + 0.25 + 0.5 * np.linspace(0, 1, 12)], 1).astype(np.float32)
    cv2.polylines(alpha, [_fixed(face.points(handle))], False, 1.0,
                  max(2, int(face.eye_distance * 0.1)), cv2.LINE_AA, shift=4)
    color = lib.fill(rng, size) * _linear_gradient(rng, size, 0.7, 1.2)[..., None]
    return color, alpha


def _microphone(lib: OccluderLibrary, rng, face: FaceFrame, size: int, skin):
    centre = np.array([rng.uniform(-0.4, 0.4), rng.uniform(0.85, 1.3)], np.float32)
    radius = rng.uniform(0.28, 0.45)
    head = face.point(*centre)
    radius_px = radius * face.eye_distance
    alpha = np.zeros((size, size), np.float32)
    cv2.circle(alpha, tuple(int(v * 16) for v in head), int(radius_px * 16), 1.0, -1, cv2.LINE_AA, shift=4)
    handle_end = face.point(centre[0] + rng.uniform(-0.6, 0.6), centre[1] + 3.0)
    cv2.line(alpha, tuple(int(v * 16) for v in head), tuple(int(v * 16) for v in handle_end), 1.0,
             max(2, int(radius_px * 0.8)), cv2.LINE_AA, shift=4)
    grey = rng.uniform(20, 160)
    color = np.full((size, size, 3), grey, np.float32)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    inside = (xx - head[0]) ** 2 + (yy - head[1]) ** 2 < radius_px**2
    period = max(radius_px / 4, 2.0)
    grille = (np.sin(xx * np.pi / period) * np.sin(yy * np.pi / period)) > 0.3
    color[inside & grille] *= 0.55
    shade = np.clip(1.25 - np.sqrt((xx - head[0] + radius_px * 0.3) ** 2 + (yy - head[1] + radius_px * 0.3) ** 2)
                    / (radius_px * 2.5), 0.6, 1.25)
    return color * np.where(inside, shade, 1.0)[..., None], alpha


_DRAWERS = {"face_mask": _face_mask, "sunglasses": _sunglasses, "eyeglasses": _eyeglasses, "hand": _hand,
            "scarf": _scarf, "cap": _cap, "phone": _phone, "cup": _cup, "microphone": _microphone}


# -- helpers ----------------------------------------------------------------------------------------


def _fixed(points: np.ndarray) -> np.ndarray:
    """Points for OpenCV drawing with 4 fractional bits (sub-pixel, anti-aliased edges)."""
    return np.round(np.asarray(points, np.float32) * 16).astype(np.int32).reshape(-1, 1, 2)


def _polygon_alpha(points: np.ndarray, size: int) -> np.ndarray:
    alpha = np.zeros((size, size), np.float32)
    cv2.fillPoly(alpha, [_fixed(points)], 1.0, cv2.LINE_AA, shift=4)
    return alpha


def _rounded_rect(cx: float, cy: float, half_w: float, half_h: float, corner: float) -> np.ndarray:
    r = corner * min(half_w, half_h)
    points = []
    for (sx, sy), start in zip(((1, 1), (-1, 1), (-1, -1), (1, -1)), (0, 90, 180, 270)):
        for a in np.radians(np.linspace(start, start + 90, 6)):
            points.append([cx + sx * (half_w - r) + r * np.cos(a), cy + sy * (half_h - r) + r * np.sin(a)])
    return np.array(points, np.float32)


def _smooth_polygon(points: np.ndarray, rng, bulge: float) -> np.ndarray:
    """Closes ``points`` with slightly outward-bulging edges (cloth is not cut straight)."""
    centre = points.mean(axis=0)
    out = []
    for a, b in zip(points, np.roll(points, -1, axis=0)):
        for t in np.linspace(0, 1, 6, endpoint=False):
            p = a + (b - a) * t
            out.append(p + (p - centre) * bulge * np.sin(np.pi * t) * rng.uniform(0.5, 1.5))
    return np.array(out, np.float32)


def _linear_gradient(rng, size: int, low: float, high: float) -> np.ndarray:
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size
    ramp = xx * np.cos(theta) + yy * np.sin(theta)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    return (low + (high - low) * ramp).astype(np.float32)


def _random_color(rng, dark: bool = False) -> np.ndarray:
    hsv = np.array([[[rng.integers(0, 180), rng.integers(0, 256), rng.integers(20, 90 if dark else 256)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _lens_centres(alpha: np.ndarray) -> np.ndarray:
    """The centres of the left and right halves of a glasses template's opaque pixels."""
    half = alpha.shape[1] // 2
    centres = []
    for part, offset in ((alpha[:, :half], 0), (alpha[:, half:], half)):
        ys, xs = np.nonzero(part > 128)
        centres.append([xs.mean() + offset, ys.mean()] if len(xs) else [offset + half / 2, alpha.shape[0] / 2])
    return np.array(centres, np.float32)
