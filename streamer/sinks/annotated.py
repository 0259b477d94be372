"""One stream's annotated video — drawn, then handed to the stream's frame sinks (recording, live view,
push) — on a thread of its own, so drawing and encoding a frame overlap the analysis of the next batch.

Frames keep their order. A full queue makes the analysis wait: a recording never skips frames, and
a slow disk shows as latency, not as a gap in the file. An error in the thread (a full disk) is
raised in the loop at the next frame or at close, as if it had happened there.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence

from streamer.annotate import annotate
from streamer.records import FrameResult, Stage
from streamer.sinks.base import AnnotatedFrame, FrameSink, FrameSinkFactory, StreamInfo
from streamer.stages import StageTimes

QUEUE_FRAMES = 4


class StreamRender:
    def __init__(self, stream: str, fps: Callable[[], float], factories: Sequence[FrameSinkFactory],
                 show_reconstruction: bool, times: StageTimes, frame_done: Callable[[FrameResult], None]):
        """``fps``: the stream's frame rate, read when its first frame is rendered (a camera's is known
        only once connected); ``frame_done`` is called with each result once it is out: its latency ends there."""
        self.stream, self._fps, self._factories = stream, fps, list(factories)
        self.show_reconstruction, self.times = show_reconstruction, times
        self.frame_done = frame_done
        self.sinks: list[FrameSink] | None = None  # made at the first frame
        self._queue: queue.Queue = queue.Queue(QUEUE_FRAMES)
        self._error: BaseException | None = None  # the first error of the render thread; it stops there
        self._raised = False
        self._thread = threading.Thread(target=self._run, name=f"render-{stream}", daemon=True)
        self._thread.start()

    def submit(self, result: FrameResult, hud: str) -> None:
        self._raise_error()
        self._queue.put((result, hud))

    def close(self) -> None:
        """Renders what is queued, then closes every sink; raises the first error met."""
        self._queue.put(None)
        self._thread.join()
        for sink in self.sinks or []:
            try:
                sink.close()
            except Exception as exc:  # the others are still closed: their files stay whole
                if self._error is None:
                    self._error, self._raised = exc, False
        self._raise_error()

    def files(self) -> list:
        return [path for sink in self.sinks or [] for path in sink.files()]

    def _raise_error(self) -> None:
        """Raises the render thread's error, once; the thread renders nothing more after it."""
        if self._error is not None and not self._raised:
            self._raised = True
            raise self._error

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain without rendering: the loop stops at its next frame
            try:
                self._render(*item)
            except BaseException as exc:  # handed to the loop's thread
                self._error = exc

    def _render(self, result: FrameResult, hud: str) -> None:
        started = time.perf_counter()
        image = annotate(result, self.show_reconstruction, hud=hud)
        if self.sinks is None:
            height, width = image.shape[:2]
            info = StreamInfo(self.stream, self._fps(), (width, height))
            self.sinks = [sink for sink in (factory(info) for factory in self._factories) if sink is not None]
        frame = AnnotatedFrame(result, image)
        for sink in self.sinks:
            sink.write(frame)
        self.times.add(Stage.RENDER, time.perf_counter() - started, 1, [result])
        self.frame_done(result)
