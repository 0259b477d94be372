"""The model stages: built from the config (models only: no store, no data), they detect faces in a batch
of frames from all streams at once and analyse the faces (occluders, reconstruction, embeddings)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from engines import Device
from streamer.align import align_face
from streamer.config import Config
from streamer.detect import FaceDetector, build_detector
from streamer.detect.regions import RegionScheduler
from streamer.embed import FaceEmbedder, build_embedder
from streamer.embed.hiding import shown_to
from streamer.inpaint import Inpainter, build_inpainter, inpaint_batched
from streamer.inpaint.reuse import ReconstructionCache
from streamer.occlusion import OccluderSegmenter, build_segmenter
from streamer.records import Face, FrameResult, Occlusion, Stage, VideoFrame
from streamer.track.reanalysis import ReanalysisSchedule


@dataclass
class StageTimes:
    """Cumulative wall time per stage, seconds, and how many items each saw."""

    seconds: dict[Stage, float] = field(default_factory=lambda: defaultdict(float))
    items: dict[Stage, int] = field(default_factory=lambda: defaultdict(int))
    # Added to from the loop, the detection thread and each stream's render thread.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, stage: Stage, seconds: float, items: int, results: list[FrameResult] = ()) -> None:
        """Also charges ``seconds`` to every frame of the batch (``results``): each waited that long."""
        with self._lock:
            self.seconds[stage] += seconds
            self.items[stage] += items
        for result in results:
            result.stage_s[stage] = result.stage_s.get(stage, 0.0) + seconds

    @contextlib.contextmanager
    def timing(self, stage: Stage, results: list[FrameResult], items: int | None = None) -> Iterator[None]:
        """Times the block as ``stage`` for the batch ``results`` (items: one per frame unless given)."""
        started = time.perf_counter()
        yield
        self.add(stage, time.perf_counter() - started, len(results) if items is None else items, results)

    def ms_per_item(self) -> dict[Stage, float]:
        return {stage: 1000 * s / max(self.items[stage], 1) for stage, s in self.seconds.items()}


@dataclass
class Stages:
    device: Device
    detector: FaceDetector
    segmenter: OccluderSegmenter
    inpainter: Inpainter
    embedder: FaceEmbedder
    crop_size: int
    min_occluded_fraction: float
    regions: RegionScheduler
    reanalysis: ReanalysisSchedule
    reconstructions: ReconstructionCache = field(default_factory=ReconstructionCache)
    times: StageTimes = field(default_factory=StageTimes)
    min_inpainted_face_px: float = 0.0

    @classmethod
    def build(cls, config: Config, device: Device, detector_device: Device | None = None) -> Stages:
        """Loads (and warms up) every model. Touches no data: the store is opened by the run alone.
        ``detector_device``: the device for the detector, when its threads differ from the others'."""
        detector = build_detector(config.detector, detector_device or device)
        return cls(
            device=device,
            detector=detector,
            segmenter=build_segmenter(config.occlusion, device),
            inpainter=build_inpainter(config.inpainter, device),
            embedder=build_embedder(config.embedder, device),
            crop_size=config.pipeline.crop_size,
            min_occluded_fraction=config.pipeline.min_occluded_fraction,
            regions=RegionScheduler(detector, config.pipeline.full_detection_every),
            # A track is analysed on every frame until it has faces enough to be named or made a pseudo-identity,
            # and while it is undecided, for as many faces as its identity aggregates.
            reanalysis=ReanalysisSchedule(config.pipeline.reanalyse_every,
                                          max(config.identity.min_frames, config.identity.pseudo_min_frames),
                                          config.identity.window),
            reconstructions=ReconstructionCache(config.pipeline.reinpaint_every),
            min_inpainted_face_px=config.pipeline.min_inpainted_face_px,
        )

    def rebuilds(self, occlusion: Occlusion, box: np.ndarray) -> bool:
        """The stream inpaints a face: enough of it hidden, and the face (``box``, xyxy in the frame) wide
        enough to tell an occluder and rebuild what it hides."""
        return (occlusion.occluded and occlusion.fraction >= self.min_occluded_fraction
                and box[2] - box[0] >= self.min_inpainted_face_px)

    def forget_track(self, stream: str, track_id: int) -> None:
        """A track ended: what the per-face stages kept for it goes."""
        self.reanalysis.forget_track(stream, track_id)
        self.reconstructions.forget_track(stream, track_id)

    def forget_stream(self, stream: str) -> None:
        """A stream's tracks all ended (it ended, went down or changed resolution): what was kept for them goes.
        Region search needs no telling: it searches a new connection or a new frame size in full itself."""
        self.reanalysis.forget_stream(stream)
        self.reconstructions.forget_stream(stream)

    def forget_ended_stream(self, stream: str) -> None:
        """A stream ended for good: its region-search state goes too."""
        self.forget_stream(stream)
        self.regions.forget_stream(stream)

    def describe(self) -> list[str]:
        return [
            f"device:    {self.device} ({self.device.reason})",
            f"detector:  {self.detector.description}" + (
                f"; full frame every {self.regions.full_every} frames, around followed faces between"
                if self.regions.full_every > 1 else ""),
            f"occlusion: {self.segmenter.description}",
            f"inpainter: {self.inpainter.description}",
            f"embedder:  {self.embedder.description}",
        ]

    def detect(self, frames: list[VideoFrame]) -> list[FrameResult]:
        """Faces, their landmarks and aligned crops, per frame."""
        picked_up = time.monotonic()
        results = []
        t = time.perf_counter()
        for frame, found in zip(frames, self.regions.detect(frames)):
            faces = [
                Face(box=b, score=float(s), landmarks=lm)
                for b, s, lm in zip(found.boxes, found.scores, found.landmarks)
            ]
            for face in faces:
                face.crop = align_face(frame.image, face.landmarks, self.crop_size)
            results.append(FrameResult(frame, faces, stage_s={Stage.QUEUE: max(0.0, picked_up - frame.decoded_at)}))
        self.times.add(Stage.DETECT, time.perf_counter() - t, len(frames), results)
        return results

    def analyse(self, results: list[FrameResult]) -> None:
        """Segment, inpaint and embed the faces due for analysis, each stage as one batch over every
        frame of the batch (tracks match); the other tracked faces carry their track's last occlusion."""
        located = [(r.frame, f) for r in results for f in r.faces]
        if not located:
            return
        due = [(frame, face) for frame, face in located
               if not self.reanalysis.carry(frame.stream, frame.index, face)]

        t = time.perf_counter()
        for (frame, face), occlusion in zip(due, self.segmenter.segment([f.crop for _, f in due])):
            face.occlusion = occlusion
            self.reanalysis.done(frame.stream, frame.index, face)
        self.times.add(Stage.OCCLUSION, time.perf_counter() - t, len(due), results)

        t = time.perf_counter()
        fresh = []
        for frame, face in located:
            if not self.rebuilds(face.occlusion, face.box):
                continue  # a narrow face's occlusion is still reported; its pixels stay real
            face.reconstruction = self.reconstructions.lookup(frame.stream, frame.index, face)
            if face.reconstruction is None:
                fresh.append((frame, face))
        if fresh:
            crops = np.stack([f.crop.image for _, f in fresh])
            masks = np.stack([f.occlusion.mask for _, f in fresh])
            for (frame, face), patch in zip(fresh, inpaint_batched(self.inpainter, crops, masks)):
                face.reconstruction = patch
                self.reconstructions.store(frame.stream, frame.index, face)
        self.times.add(Stage.INPAINT, time.perf_counter() - t, len(fresh), results)

        # Both what the camera saw and the reconstruction are embedded: the track's decision says which one
        # matched, so an operator sees whether reconstruction helped. What the camera saw goes to the
        # embedder's student where it has one (trained for occluded faces, in the gallery's space).
        t = time.perf_counter()
        faces = [f for _, f in due]
        rebuilt = [f for f in faces if f.reconstructed]
        if faces:
            seen = [f.crop.image for f in faces]
            reconstructions = [f.reconstruction for f in rebuilt]
            if self.embedder.student is None:  # one batch
                embeddings = self.embedder.embed(np.stack(seen + reconstructions))
            else:
                student = self.embedder.student
                embeddings = student.embed(shown_to(student, seen, [f.occlusion.mask for f in faces],
                                                    [f.reconstructed for f in faces]))
                if reconstructions:
                    embeddings = np.concatenate([embeddings, self.embedder.embed(np.stack(reconstructions))])
            weights = self.embedder.visible_dims(np.stack([f.occlusion.mask for f in faces]))
            for i, face in enumerate(faces):
                face.embedding = embeddings[i]
                face.visible_weights = weights[i] if weights is not None else None
            for face, vector in zip(rebuilt, embeddings[len(faces):]):
                face.reconstruction_embedding = vector
        self.times.add(Stage.EMBED, time.perf_counter() - t, len(faces) + len(rebuilt), results)
