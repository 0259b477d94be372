"""What every output implements. The loop knows only these two protocols: adding a sink touches no loop code.

``EventSink``: every sighting, once committed to the store, in order, on the loop's thread (a sink
that talks to the network hands over to a thread of its own and must not block). ``FrameSink``: one
stream's annotated frames, in order, on that stream's render thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from streamer.records import FrameResult, Sighting


class EventSink(Protocol):
    def emit(self, sightings: Sequence[Sighting]) -> None: ...

    def close(self, drain: bool = True) -> None:
        """Delivers what it still holds (within its own time limit; not at all without ``drain``, when the
        run is aborted) and releases everything."""
        ...

    def outcome(self) -> str | None:
        """One line for the run's summary (what was written or delivered), or None."""
        ...


@dataclass(frozen=True)
class StreamInfo:
    """What a frame sink learns about its stream when the stream's first frame is rendered."""

    name: str
    fps: float  # the source's frame rate (nominal for files, measured or announced for cameras)
    size: tuple[int, int]  # (width, height) of its first frame


@dataclass(frozen=True)
class AnnotatedFrame:
    result: FrameResult  # what was found in the frame
    image: np.ndarray  # (H, W, 3) uint8 BGR: the frame as the operator sees it


class FrameSink(Protocol):
    def write(self, frame: AnnotatedFrame) -> None: ...

    def close(self) -> None: ...

    def files(self) -> list:
        """Paths of the files it wrote (recordings), for the summary and the run's manifest."""
        ...


# Makes one stream's sink when that stream's first frame is rendered; None: this sink skips the stream.
FrameSinkFactory = Callable[[StreamInfo], "FrameSink | None"]
