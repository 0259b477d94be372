"""One training sample: occluders composed onto an aligned face, exact masks, CCTV-like degradation.

The same degradation (blur, low resolution, noise, JPEG, exposure) is applied to the occluded face
and to the original, so a (occluded, original, mask) pair differs only where the occluder is.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from streamer.datagen.face_frame import FaceFrame
from streamer.datagen.occluders import CLASSES, OccluderLibrary

MIN_INSTANCE_FRACTION = 0.004  # an occluder showing less than this share of the crop is not labelled
# What may be worn together: nobody wears sunglasses over eyeglasses, or a cup over a microphone.
_EXCLUSIVE = [{"sunglasses", "eyeglasses"}, {"cup", "microphone", "phone"}, {"scarf", "face_mask"}]


@dataclass
class Instance:
    name: str
    mask: np.ndarray  # (S, S) bool, the pixels of this occluder that are visible

    @property
    def class_id(self) -> int:
        return CLASSES.index(self.name)


@dataclass
class Sample:
    occluded: np.ndarray  # (S, S, 3) uint8 BGR
    original: np.ndarray  # (S, S, 3) uint8 BGR, the same face and degradation without the occluders
    instances: list[Instance]
    coverage: np.ndarray  # (S, S) float 0..1: how much of each pixel the occluders cover (tinted lenses, soft edges)

    @property
    def mask(self) -> np.ndarray:
        union = np.zeros(self.occluded.shape[:2], bool)
        for instance in self.instances:
            union |= instance.mask
        return union


@dataclass(frozen=True)
class ComposeSettings:
    clean_share: float = 0.12  # samples with no occluder: what "nothing to find" looks like
    second_occluder_share: float = 0.25
    class_weights: tuple[float, ...] = (3.0, 1.5, 1.0, 1.5, 1.0, 1.0, 0.8, 0.8, 0.8)  # in CLASSES order
    degrade_share: float = 0.7


def compose(face: np.ndarray, landmarks: np.ndarray, library: OccluderLibrary, rng: np.random.Generator,
            settings: ComposeSettings = ComposeSettings(), classes: list[str] | None = None) -> Sample:
    """Occluders on ``face`` (an aligned (S, S, 3) crop whose 5 points are ``landmarks``): ``classes`` if
    given (an evaluation asks for each class in turn; [] for none), else drawn as ``settings`` say."""
    size = face.shape[0]
    frame = FaceFrame(np.asarray(landmarks, np.float32))
    names = _pick_classes(rng, settings) if classes is None else list(classes)
    skin = skin_tone(face, frame)
    light = float(np.clip(cv2.cvtColor(face, cv2.COLOR_BGR2GRAY).mean() / 130.0, 0.5, 1.5))
    canvas = face.astype(np.float32)
    coverage = np.zeros(face.shape[:2], np.float32)
    instances: list[Instance] = []
    for name in names:
        layer = library.draw(name, rng, frame, size, skin)
        # Lit like the face, and as sharp as the camera: occluders pasted crisp and bright look pasted.
        color = layer.color * (light ** rng.uniform(0.5, 1.0)) * rng.uniform(0.85, 1.15)
        alpha = cv2.GaussianBlur(layer.alpha, (0, 0), rng.uniform(0.4, 1.0))
        canvas = canvas * (1 - alpha[..., None]) + np.clip(color, 0, 255) * alpha[..., None]
        coverage = 1 - (1 - coverage) * (1 - alpha)
        visible = alpha > 0.5
        for earlier in instances:
            earlier.mask &= ~visible
        instances.append(Instance(name, visible))
    instances = [i for i in instances if i.mask.mean() >= MIN_INSTANCE_FRACTION]
    occluded = np.clip(canvas, 0, 255).astype(np.uint8)
    if rng.random() < settings.degrade_share:
        occluded, original = degrade_pair(occluded, face, rng)
    else:
        original = face.copy()
    return Sample(occluded, original, instances, coverage)


def compose_landed(face: np.ndarray, landmarks: np.ndarray, library: OccluderLibrary, rng: np.random.Generator,
                   settings: ComposeSettings, classes: list[str] | None) -> Sample:
    """``compose``, drawn again (up to 8 times) while the ``classes`` asked for land off the face; drawn once where
    none is asked (None: as ``settings`` draw them; []: no occluder)."""
    for _ in range(8):
        sample = compose(face, landmarks, library, rng, settings, classes=classes)
        if not classes or sample.instances:
            break
    return sample


def skin_tone(face: np.ndarray, frame: FaceFrame) -> np.ndarray:
    """The median colour of both cheeks: what a hand in front of this face would look like."""
    size = face.shape[0]
    samples = []
    for x in (-0.55, 0.55):
        cx, cy = frame.point(x, 0.6)
        r = max(2, int(frame.eye_distance * 0.12))
        x0, y0 = int(np.clip(cx - r, 0, size - 1)), int(np.clip(cy - r, 0, size - 1))
        patch = face[y0:y0 + 2 * r, x0:x0 + 2 * r].reshape(-1, 3)
        if len(patch):
            samples.append(patch)
    return np.median(np.concatenate(samples), axis=0).astype(np.float32) if samples else np.full(3, 150, np.float32)


def degrade_pair(occluded: np.ndarray, original: np.ndarray, rng: np.random.Generator):
    """The same camera faults on both images: low resolution, blur, exposure, noise, JPEG."""
    size = occluded.shape[0]
    ops = []
    if rng.random() < 0.5:
        small = int(rng.uniform(0.2, 0.6) * size)
        ops.append(lambda im: cv2.resize(cv2.resize(im, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                                         interpolation=cv2.INTER_LINEAR))
    if rng.random() < 0.4:
        sigma = rng.uniform(0.5, 2.0)
        ops.append(lambda im: cv2.GaussianBlur(im, (0, 0), sigma))
    if rng.random() < 0.5:
        gain, gamma = rng.uniform(0.6, 1.3), rng.uniform(0.7, 1.4)
        ops.append(lambda im: np.clip(255 * (im / 255.0) ** gamma * gain, 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        ops.append(lambda im: cv2.cvtColor(cv2.cvtColor(im, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR))
    if rng.random() < 0.5:
        noise = rng.normal(0, rng.uniform(2, 10), occluded.shape).astype(np.float32)
        ops.append(lambda im: np.clip(im.astype(np.float32) + noise, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        quality = int(rng.uniform(20, 75))
        ops.append(lambda im: cv2.imdecode(cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], 1))
    out = []
    for image in (occluded, original):
        for op in ops:
            image = op(image)
        out.append(np.ascontiguousarray(image, np.uint8))
    return out[0], out[1]


def _pick_classes(rng: np.random.Generator, settings: ComposeSettings) -> list[str]:
    if rng.random() < settings.clean_share:
        return []
    weights = np.array(settings.class_weights, np.float64)
    first = CLASSES[rng.choice(len(CLASSES), p=weights / weights.sum())]
    names = [first]
    if rng.random() < settings.second_occluder_share:
        allowed = [c for c in CLASSES if c != first and not any({c, first} <= group for group in _EXCLUSIVE)]
        w = np.array([weights[CLASSES.index(c)] for c in allowed])
        names.append(allowed[rng.choice(len(allowed), p=w / w.sum())])
    return names
