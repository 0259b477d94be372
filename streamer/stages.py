"""Builds every stage from the config and analyses a batch of frames from all streams at once."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from engines import Device
from streamer.align import align_face
from streamer.config import Config
from streamer.detect import FaceDetector, build_detector
from streamer.embed import FaceEmbedder, build_embedder
from streamer.identify.gallery import Gallery
from streamer.inpaint import Inpainter, build_inpainter, inpaint_batched
from streamer.occlusion import OccluderSegmenter, build_segmenter
from streamer.records import Face, FrameResult, VideoFrame


@dataclass
class StageTimes:
    """Cumulative wall time per stage, seconds, and how many items each saw."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    items: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, stage: str, seconds: float, items: int) -> None:
        self.seconds[stage] += seconds
        self.items[stage] += items


@dataclass
class Stages:
    device: Device
    detector: FaceDetector
    segmenter: OccluderSegmenter
    inpainter: Inpainter
    embedder: FaceEmbedder
    gallery: Gallery
    crop_size: int
    min_occluded_fraction: float
    times: StageTimes = field(default_factory=StageTimes)

    @classmethod
    def build(cls, config: Config, device: Device) -> Stages:
        detector = build_detector(config.detector, device)
        embedder = build_embedder(config.embedder, device)
        gallery = Gallery.enroll_folder(
            config.gallery.dir, detector, embedder, config.pipeline.crop_size, config.gallery.threshold
        )
        return cls(
            device=device,
            detector=detector,
            segmenter=build_segmenter(config.occlusion, device),
            inpainter=build_inpainter(config.inpainter, device),
            embedder=embedder,
            gallery=gallery,
            crop_size=config.pipeline.crop_size,
            min_occluded_fraction=config.pipeline.min_occluded_fraction,
        )

    def describe(self) -> list[str]:
        return [
            f"device:    {self.device} ({self.device.reason})",
            f"detector:  {self.detector.description}",
            f"occlusion: {self.segmenter.description}",
            f"inpainter: {self.inpainter.description}",
            f"embedder:  {self.embedder.description}",
            f"gallery:   {len(self.gallery)} identities, threshold {self.gallery.threshold}",
        ]

    def analyze(self, frames: list[VideoFrame]) -> list[FrameResult]:
        """Detect per frame, then segment, inpaint, embed and match every face of every frame as one batch each."""
        results = []
        t = time.perf_counter()
        for frame in frames:
            found = self.detector.detect(frame.image)
            faces = [
                Face(box=b, score=float(s), landmarks=lm)
                for b, s, lm in zip(found.boxes, found.scores, found.landmarks)
            ]
            for face in faces:
                face.crop = align_face(frame.image, face.landmarks, self.crop_size)
            results.append(FrameResult(frame, faces))
        faces = [f for r in results for f in r.faces]
        self.times.add("detect", time.perf_counter() - t, len(frames))
        if not faces:
            return results

        t = time.perf_counter()
        for face, occlusion in zip(faces, self.segmenter.segment([f.crop for f in faces])):
            face.occlusion = occlusion
        self.times.add("occlusion", time.perf_counter() - t, len(faces))

        occluded = [f for f in faces if f.occlusion.occluded and f.occlusion.fraction >= self.min_occluded_fraction]
        t = time.perf_counter()
        if occluded:
            crops = np.stack([f.crop.image for f in occluded])
            masks = np.stack([f.occlusion.mask for f in occluded])
            for face, patch in zip(occluded, inpaint_batched(self.inpainter, crops, masks)):
                face.reconstruction = patch
        self.times.add("inpaint", time.perf_counter() - t, len(occluded))

        t = time.perf_counter()
        views = np.stack([f.reconstruction if f.reconstructed else f.crop.image for f in faces])
        embeddings = self.embedder.embed(views)
        weights = self.embedder.visible_dims(np.stack([f.occlusion.mask for f in faces]))
        for face, vector, match in zip(faces, embeddings, self.gallery.match(embeddings, weights)):
            face.embedding, face.match = vector, match
        self.times.add("embed+match", time.perf_counter() - t, len(faces))
        return results
