"""The loop a user would write with the same models, one frame and one face at a time.

Per frame: the face detector, then ultralytics' ByteTrack on its detections (the tracker
``model.track`` runs; ``model.track`` itself needs an ultralytics detector, and the face detectors
here are SCRFD or OpenCV). Per face, one after another: occluder segmentation (ultralytics
``predict`` on the crop), inpainting when occluded, embedding of the face (the reconstruction when
there is one), a cosine match against the gallery. Boxes and names are drawn with OpenCV and the
frame is written with OpenCV's VideoWriter; frames are read with OpenCV's VideoCapture, streams in
turn. The stage objects are streamer's own (same weights, same runtimes, same settings), so the
ratio against it measures the architecture, not the models.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from streamer.align import align_face
from streamer.identify.track_identity import IdentityResolver
from streamer.latency import LatencyRecorder
from streamer.stages import Stages

# ultralytics' cfg/trackers/bytetrack.yaml, what model.track uses by default.
BYTETRACK_DEFAULTS = dict(tracker_type="bytetrack", track_high_thresh=0.25, track_low_thresh=0.1,
                          new_track_thresh=0.25, track_buffer=30, match_thresh=0.8, fuse_score=True)


@dataclass
class BaselineRun:
    frames: int = 0
    seconds: float = 0.0
    faces: int = 0
    latency: LatencyRecorder = field(default_factory=LatencyRecorder)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def run_baseline(stages: Stages, resolver: IdentityResolver, clips: list[Path], out_dir: Path,
                 max_frames: int | None = None) -> BaselineRun:
    """The gallery is the one the run's store holds (the same people, the same vectors)."""
    from ultralytics.engine.results import Boxes
    from ultralytics.trackers.byte_tracker import BYTETracker

    gallery, threshold = resolver.index, resolver.index.fixed_threshold(resolver.base_threshold)  # its frame's
    out_dir.mkdir(parents=True, exist_ok=True)
    readers = [cv2.VideoCapture(str(clip)) for clip in clips]
    trackers = [BYTETracker(SimpleNamespace(**BYTETRACK_DEFAULTS)) for _ in clips]
    writers: list[cv2.VideoWriter | None] = [None] * len(clips)
    run = BaselineRun()
    counts = [0] * len(clips)
    started = time.perf_counter()
    live = set(range(len(clips)))
    while live:
        for k in sorted(live):
            t0 = time.perf_counter()
            ok, frame = readers[k].read()
            if not ok or (max_frames is not None and counts[k] >= max_frames):
                live.discard(k)
                continue
            counts[k] += 1
            t1 = time.perf_counter()
            found = stages.detector.detect(frame)
            rows = np.concatenate([found.boxes, found.scores[:, None], np.zeros((len(found), 1))], axis=1)
            tracks = trackers[k].update(Boxes(rows.astype(np.float32), frame.shape[:2]).cpu().numpy(), frame)
            t2 = time.perf_counter()
            labels = []
            for x1, y1, x2, y2, track_id, _, _, index in tracks:
                crop = align_face(frame, found.landmarks[int(index)], stages.crop_size)
                occlusion = stages.segmenter.segment([crop])[0]
                view = crop.image
                if stages.rebuilds(occlusion, np.array([x1, y1, x2, y2])):
                    view = stages.inpainter.inpaint(crop.image[None], occlusion.mask[None])[0]
                vector = stages.embedder.embed(view[None])[0]
                identities, scores = gallery.scores(vector[None])
                best = int(scores[0].argmax()) if scores.size else -1
                name = gallery.names[int(identities[best])] if best >= 0 and scores[0, best] >= threshold \
                    else f"#{int(track_id)}"
                labels.append(((int(x1), int(y1), int(x2), int(y2)), name))
            run.faces += len(labels)
            t3 = time.perf_counter()
            for (x1, y1, x2, y2), name in labels:
                cv2.rectangle(frame, (x1, y1), (x2, y2), (80, 200, 60), 2)
                cv2.putText(frame, name, (x1, max(12, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (80, 200, 60), 1)
            if writers[k] is None:
                fps = readers[k].get(cv2.CAP_PROP_FPS) or 25.0
                writers[k] = cv2.VideoWriter(str(out_dir / f"baseline-{k}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                             fps, (frame.shape[1], frame.shape[0]))
            writers[k].write(frame)
            t4 = time.perf_counter()
            run.latency.add({"decode": t1 - t0, "detect+track": t2 - t1, "per-face stages": t3 - t2,
                             "output": t4 - t3, "total": t4 - t0})
            run.frames += 1
    run.seconds = time.perf_counter() - started
    for reader in readers:
        reader.release()
    for writer in writers:
        if writer is not None:
            writer.release()
    return run
