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
from streamer.inpaint.reuse import ReconstructionCache
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
    reconstructions: ReconstructionCache = field(default_factory=ReconstructionCache)
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
            reconstructions=ReconstructionCache(config.pipeline.reinpaint_every),
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

    def analyze(self, frames: list[VideoFrame], associate=None) -> list[FrameResult]:
        """Every stage over a batch of frames from any streams; ``associate(result)`` (the streams'
        trackers) runs between detection and the per-face stages, which reuse work by track."""
        results = self.detect(frames)
        if associate is not None:
            for result in results:
                associate(result)
        self.complete(results)
        return results

    def detect(self, frames: list[VideoFrame]) -> list[FrameResult]:
        """Faces, their landmarks and aligned crops, per frame."""
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
        self.times.add("detect", time.perf_counter() - t, len(frames))
        return results

    def complete(self, results: list[FrameResult]) -> None:
        """Segment, inpaint, embed and match every face of every frame, each stage as one batch."""
        located = [(r.frame, f) for r in results for f in r.faces]
        faces = [f for _, f in located]
        if not faces:
            return

        t = time.perf_counter()
        for face, occlusion in zip(faces, self.segmenter.segment([f.crop for f in faces])):
            face.occlusion = occlusion
        self.times.add("occlusion", time.perf_counter() - t, len(faces))

        t = time.perf_counter()
        fresh = []
        for frame, face in located:
            if not (face.occlusion.occluded and face.occlusion.fraction >= self.min_occluded_fraction):
                continue
            face.reconstruction = self.reconstructions.lookup(frame.stream, frame.index, face)
            if face.reconstruction is None:
                fresh.append((frame, face))
        if fresh:
            crops = np.stack([f.crop.image for _, f in fresh])
            masks = np.stack([f.occlusion.mask for _, f in fresh])
            for (frame, face), patch in zip(fresh, inpaint_batched(self.inpainter, crops, masks)):
                face.reconstruction = patch
                self.reconstructions.store(frame.stream, frame.index, face)
        self.times.add("inpaint", time.perf_counter() - t, len(fresh))

        t = time.perf_counter()
        views = np.stack([f.reconstruction if f.reconstructed else f.crop.image for f in faces])
        embeddings = self.embedder.embed(views)
        weights = self.embedder.visible_dims(np.stack([f.occlusion.mask for f in faces]))
        for face, vector, match in zip(faces, embeddings, self.gallery.match(embeddings, weights)):
            face.embedding, face.match = vector, match
        self.times.add("embed+match", time.perf_counter() - t, len(faces))
