"""Training canvases for the occlusion-robust student of a face detector, composed on the fly from face banks.

Item i is one detector input twice, the same geometry in both: a bank face as a camera might see it (occluders
of the data engine and camera faults; some with faults only) and the same face clean, each resized to one side
and placed at one spot of a square canvas. What surrounds the face is either its own edge, replicated (as a
still photo cropped tight to the face is searched: ``detect_in_photo``), or a patch of a real scene (frames of
``--backgrounds``; with ``--surroundings``, half the scenes are instead what surrounds a face in a portrait, with no
pixel of the face: hair, clothes, an out-of-focus wall or painting, enlarged to the canvas). A share of canvases
hold the scene alone: where the teacher finds nothing, nor may the student. No box or landmark is labelled: the
teacher's outputs on the clean canvas are the targets.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from streamer.datagen.compose import compose
from streamer.datagen.face_bank import PHOTO_SUFFIXES, BankFace
from streamer.datagen.labelled_faces import face_free_square, labelled_photos
from streamer.datagen.occluders import OccluderLibrary
from streamer.errors import ConfigError
from streamer.train.embedder_data import STUDENT_COMPOSE
from streamer.train.inpainter_data import ComposedPairs

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".ts", ".gif", ".webm")
FRAMES_PER_VIDEO = 40  # spread over the video: scenes, not near-copies of one frame
# A bank crop's side on the canvas, as a share of the canvas (log-uniform): the face (about half the crop) from
# about 20 px on a 320 px input, as a face across a room, to the whole input, as a still photo cropped tight.
SIDE_SHARES = (0.12, 1.0)
TIGHT_SHARE = 0.2  # canvases that are the crop itself: a tight still, as the evaluation's probes are
EMPTY_SHARE = 0.1  # canvases of the scene alone (with --backgrounds)
SURROUNDING_MIN_PX = 48  # a portrait whose face leaves no larger square free gives no scene


def read_backgrounds(paths: list[Path], side: int) -> list[np.ndarray]:
    """Frames of scenes (image files, folders of them, videos) as uint8 BGR, each scaled so that its shorter side
    is at least ``side``; a one-line ConfigError naming a path that holds none."""
    frames = []
    for path in paths:
        if path.is_dir():
            found = [cv2.imread(str(p)) for p in sorted(path.rglob("*")) if p.suffix.lower() in PHOTO_SUFFIXES]
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            found = _video_frames(path)
        else:
            found = [cv2.imread(str(path))]
        found = [f for f in found if f is not None]
        if not found:
            raise ConfigError(f"--backgrounds: no image or video frame could be read from {path}")
        for frame in found:
            scale = side / min(frame.shape[:2])
            if scale > 1:
                frame = cv2.resize(frame, (round(frame.shape[1] * scale) + 1, round(frame.shape[0] * scale) + 1))
            frames.append(frame)
    return frames


def read_surroundings(root: Path) -> list[np.ndarray]:
    """What surrounds the face in each training photo of a CelebAMask-HQ folder (images/, labels/; its train split):
    the largest square with no pixel of the face, uint8 BGR (a median 83 px of the 256 px photos); a one-line
    ConfigError naming ``root`` where there is no such folder or no square."""
    try:
        photos = labelled_photos("celebamaskhq", root)
    except ConfigError:
        photos = []
    squares = []
    for photo in photos:
        image = cv2.imread(str(photo.image)) if photo.split == "train" else None
        square = None if image is None else face_free_square(photo.labels, image)
        if square is not None and square.shape[0] >= SURROUNDING_MIN_PX:
            squares.append(square)
    if not squares:
        raise ConfigError(f"--surroundings: {root} has no CelebAMask-HQ training photo with {SURROUNDING_MIN_PX} px "
                          "free of the face (images/N.jpg with labels/N.png)")
    return squares


def _video_frames(path: Path) -> list[np.ndarray]:
    """``FRAMES_PER_VIDEO`` frames spread over the video (every 25th where it does not say how long it is), decoded
    one at a time: an hour of video is never held in memory."""
    import av

    frames = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            step = max(1, stream.frames // FRAMES_PER_VIDEO) if stream.frames else 25
            for index, frame in enumerate(container.decode(stream)):
                if index % step == 0:
                    frames.append(frame.to_ndarray(format="bgr24"))
                    if len(frames) == FRAMES_PER_VIDEO:
                        break
    except (av.error.FFmpegError, IndexError):
        return []
    return frames


class SeenAndCleanCanvases(ComposedPairs):
    """Item i: (as seen, clean) detector inputs, (3, C, C) float32 each, as ``to_input`` makes them of a uint8 BGR
    canvas (the teacher's own pre-processing: ``detector_heads``)."""

    def __init__(self, faces: list[BankFace], library: OccluderLibrary, canvas: int, seed: int,
                 backgrounds: list[np.ndarray], to_input: Callable[[np.ndarray], torch.Tensor],
                 settings=STUDENT_COMPOSE, samples_per_epoch: int | None = None, occluders_alone: float = 0.0,
                 surroundings: list[np.ndarray] | None = None):
        size = faces[0].image().shape[0] if faces else 224  # the bank's own crops: no resize before composing
        super().__init__(faces, library, size, seed, settings, samples_per_epoch)
        self.canvas, self.backgrounds, self.to_input = canvas, backgrounds, to_input
        # A student taught to accept half a face takes smooth, blotchy textures a face's size for one (a painting's
        # water scored 0.84 where its teacher gave 0.38): portraits' surroundings show it many such.
        self.surroundings = surroundings or []
        # The share of scene-alone canvases given occluders with no face under them: a hand or a mask is not a face.
        self.occluders_alone = occluders_alone

    def canvases(self, index: int, epoch: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """(as seen, clean) uint8 BGR canvases, and whether a face was placed."""
        rng = np.random.default_rng([self.seed, epoch + 1, index])  # +1: numpy seeds must be non-negative
        side_px = self.canvas
        scene = None
        if (self.backgrounds or self.surroundings) and rng.random() < 0.5:
            # Drawn only with surroundings: a run without them sees the canvases it always did.
            around = bool(self.surroundings) and (not self.backgrounds or rng.random() < 0.5)
            scene = self.surrounding(rng) if around else self.scene(self.backgrounds, rng)
        alone = scene is not None and rng.random() < EMPTY_SHARE / 0.5
        if alone and rng.random() >= self.occluders_alone:
            return scene, scene, False
        image, landmarks = self.face(index % len(self.faces))
        sample = compose(image, landmarks, self.library, rng, self.settings)
        seen = sample.occluded
        if rng.random() < TIGHT_SHARE:
            side = side_px
        else:
            side = int(round(side_px * np.exp(rng.uniform(*np.log(SIDE_SHARES)))))
        x0, y0 = (int(v) for v in rng.integers(0, side_px - side + 1, size=2))
        if alone:  # the occluders where a face would be, and no face: the teacher's answer on it is the target
            layer = cv2.resize(np.dstack([seen, sample.coverage[:, :, None] * 255]).astype(np.uint8), (side, side))
            canvas = scene.copy()
            cover = layer[:, :, 3:].astype(np.float32) / 255
            region = canvas[y0:y0 + side, x0:x0 + side].astype(np.float32)
            canvas[y0:y0 + side, x0:x0 + side] = (region * (1 - cover) + layer[:, :, :3] * cover).astype(np.uint8)
            return canvas, canvas, False
        placed = []
        for face in (seen, image):
            resized = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA if side < face.shape[0]
                                 else cv2.INTER_LINEAR)
            if scene is None:
                canvas = cv2.copyMakeBorder(resized, y0, side_px - side - y0, x0, side_px - side - x0,
                                            cv2.BORDER_REPLICATE)
            else:
                canvas = scene.copy()
                canvas[y0:y0 + side, x0:x0 + side] = resized
            placed.append(canvas)
        return placed[0], placed[1], True

    def scene(self, frames: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
        """A canvas-sized patch of one of ``frames``, drawn by ``rng``."""
        frame = frames[int(rng.integers(len(frames)))]
        y = int(rng.integers(0, frame.shape[0] - self.canvas + 1))
        x = int(rng.integers(0, frame.shape[1] - self.canvas + 1))
        return np.ascontiguousarray(frame[y:y + self.canvas, x:x + self.canvas])

    def surrounding(self, rng: np.random.Generator) -> np.ndarray:
        """One of the portraits' surroundings, enlarged to the canvas, mirrored half the time."""
        square = self.surroundings[int(rng.integers(len(self.surroundings)))]
        scene = cv2.resize(square, (self.canvas, self.canvas), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(scene[:, ::-1]) if rng.random() < 0.5 else scene

    def __getitem__(self, index: int):
        seen, clean, _ = self.canvases(index, self.epoch)
        return self.to_input(seen), self.to_input(clean)
