"""Each stage alone: the detector per frame of a clip, the per-face stages across batch sizes on the
clip's own aligned faces, and the annotated output (drawing + encoding) per frame."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import av
import numpy as np

from streamer.align import align_face
from streamer.annotate import annotate
from streamer.inpaint import inpaint_batched
from streamer.records import Face, FrameResult, VideoFrame
from streamer.sinks.mp4 import Mp4Writer
from streamer.stages import Stages

MIN_SECONDS = 0.5  # each measurement repeats until it has run this long (and at least 3 times)


def _timed(call, min_seconds: float = MIN_SECONDS) -> float:
    """Median seconds of one ``call()``, after one warm-up call."""
    call()
    times, started = [], time.perf_counter()
    while len(times) < 3 or time.perf_counter() - started < min_seconds:
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _frames(path: Path, count: int) -> list[np.ndarray]:
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="bgr24"))
            if len(frames) >= count:
                break
    return frames


def sweep_stages(stages: Stages, clip: Path, batch_sizes: list[int], frames: int = 20) -> dict:
    images = _frames(clip, frames)
    detect_s = [_timed(lambda im=im: stages.detector.detect(im), 0.0) for im in images]
    results = []
    for k, image in enumerate(images):
        found = stages.detector.detect(image)
        faces = [Face(b, float(s), lm, track_id=i) for i, (b, s, lm)
                 in enumerate(zip(found.boxes, found.scores, found.landmarks))]
        for face in faces:
            face.crop = align_face(image, face.landmarks, stages.crop_size)
        results.append(FrameResult(VideoFrame("bench", k, image, None, 0.0, 0.0), faces))
    pool = [face.crop for result in results for face in result.faces]
    report = {"frame_size": [images[0].shape[1], images[0].shape[0]], "frames": len(images),
              "detect_ms_per_frame": round(1000 * float(np.median(detect_s)), 2),
              "faces_found": len(pool), "output_ms_per_frame": round(1000 * _output_seconds(results), 2),
              "batches": {}}
    if not pool:
        return report  # no faces: the per-face stages have nothing to run on
    masks = [o.mask for o in stages.segmenter.segment(pool)]
    # Faces the segmenter found unoccluded get a lower-face hole, so the inpainter always has work.
    size = len(masks[0])
    fallback = np.zeros_like(masks[0])
    fallback[int(0.55 * size):, int(0.2 * size):int(0.8 * size)] = True
    masks = [m if m.any() else fallback for m in masks]
    for batch_size in batch_sizes:
        pick = [k % len(pool) for k in range(batch_size)]
        crops = [pool[k] for k in pick]
        images_b = np.stack([c.image for c in crops])
        masks_b = np.stack([masks[k] for k in pick])
        seconds = {
            "occlusion": _timed(lambda c=crops: stages.segmenter.segment(c)),
            "inpaint": _timed(lambda i=images_b, m=masks_b: inpaint_batched(stages.inpainter, i, m)),
            "embed": _timed(lambda i=images_b: stages.embedder.embed(i)),
        }
        report["batches"][str(batch_size)] = {
            stage: {"ms_per_call": round(1000 * s, 2), "ms_per_face": round(1000 * s / batch_size, 2),
                    "faces_per_s": round(batch_size / s, 1)} for stage, s in seconds.items()}
    return report


def _output_seconds(results: list[FrameResult]) -> float:
    """Drawing each frame's faces and encoding it with the default codec, seconds per frame."""
    height, width = results[0].frame.image.shape[:2]
    with tempfile.TemporaryDirectory() as folder:
        writer = Mp4Writer(Path(folder) / "out.mp4", 25, (width, height))
        started = time.perf_counter()
        for result in results:
            writer.write(annotate(result))
        writer.close()
        return (time.perf_counter() - started) / len(results)
