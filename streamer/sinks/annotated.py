"""One stream's annotated video — drawn, recorded, shown live, pushed — on a thread of its own, so
drawing and encoding a frame overlap the analysis of the next batch.

Frames keep their order. A full queue makes the analysis wait: a recording never skips frames, and
a slow disk shows as latency, not as a gap in the file. An error in the thread (a full disk) is
raised in the pipeline at the next frame or at close, as if it had happened there.
"""

from __future__ import annotations

import queue
import threading
import time

from streamer.annotate import annotate
from streamer.records import FrameResult
from streamer.sinks.recording import Recording
from streamer.sinks.rtsp_push import RtspPush

QUEUE_FRAMES = 4


class AnnotatedVideo:
    def __init__(self, source, config, live_view, frame_done):
        self.source, self.config, self.live_view = source, config, live_view
        self.frame_done = frame_done  # called with each result once it is out: the latency ends there
        self.recording: Recording | None = None
        self.push: RtspPush | None = None
        self._queue: queue.Queue = queue.Queue(QUEUE_FRAMES)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"annotated-{source.name}", daemon=True)
        self._thread.start()

    def submit(self, result: FrameResult, hud: str) -> None:
        self._raise_error()
        self._queue.put((result, hud))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self.recording:
            self.recording.close()
        if self.push:
            self.push.close()
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain: the pipeline stops at its next frame
            try:
                self._write(*item)
            except BaseException as exc:  # handed to the pipeline's thread
                self._error = exc

    def _write(self, result: FrameResult, hud: str) -> None:
        started = time.perf_counter()
        out, source, image = self.config.output, self.source, result.frame.image
        annotated = annotate(result, out.show_reconstruction, hud=hud)
        height, width = image.shape[:2]
        if out.video:
            self.recording = self.recording or Recording(
                out.dir, source.name, source.fps, (width, height), out.codec, out.crf, out.segment_s
            )
            self.recording.write(annotated)
        if self.live_view:
            self.live_view.publish(source.name, annotated)
        if out.rtsp_push:
            url = out.rtsp_push.replace("{stream}", source.name)
            self.push = self.push or RtspPush(url, source.name, source.fps, (width, height), out.rtsp_push_options)
            self.push.push(annotated)
        result.stage_s["output"] = time.perf_counter() - started
        self.frame_done(result)
