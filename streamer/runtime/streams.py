"""One stream's state through a run, and its lifecycle.

A stream is tracked (its faces get track IDs), identified (its tracks' events) and rendered (its
annotated frames to its frame sinks). Its tracks end, and everything kept for them is forgotten in one
place (``_forget``), when a track ends or joins a lost track, and when the stream ends, goes down or
changes resolution.
"""

from __future__ import annotations

import logging

from streamer.config import Config
from streamer.identify.track_identity import IdentityResolver
from streamer.progress import StreamCounters
from streamer.records import EventKind, FrameResult, StreamStatus, TrackEvent
from streamer.runtime.status import stream_status
from streamer.sinks.annotated import StreamRender
from streamer.sinks.base import FrameSinkFactory
from streamer.sources import ThreadedSource
from streamer.stages import Stages
from streamer.track.events import TrackEvents

log = logging.getLogger(__name__)


class StreamState:
    def __init__(self, source: ThreadedSource, config: Config, resolver: IdentityResolver, stages: Stages,
                 frame_sinks: list[FrameSinkFactory]):
        self.source, self.stages = source, stages
        self.name = source.name
        # A folder's images are stills, not a video: each face is reported in each image, on its own.
        self.stills = source.config.kind == "folder"
        pipeline = config.pipeline
        min_hits, max_misses = (1, 0) if self.stills else (pipeline.track_min_hits, pipeline.track_max_misses)
        self.events = TrackEvents(source.name, resolver, min_hits, max_misses,
                                  None if self.stills else pipeline.track_reattach_similarity,
                                  config.output.event_embeddings, stills=self.stills,
                                  scene_cuts=pipeline.track_scene_cuts,
                                  appearance_check=pipeline.track_appearance_check,
                                  start_score=pipeline.track_start_score)
        self.counters = StreamCounters()
        self.render = StreamRender(source.name, lambda: source.fps, frame_sinks, config.output.show_reconstruction,
                                   stages.times, self._frame_done) if frame_sinks else None
        self.last_result: FrameResult | None = None
        self.ended = False
        self.removed = False  # taken out of the run (web.control): shown no more, its outputs kept
        self._closed = False
        self._shape: tuple[int, ...] | None = None
        self._session = 0  # the source's connection the open tracks were seen on

    # -- the loop's stages, per frame -----------------------------------------------------------

    def track(self, result: FrameResult) -> list[TrackEvent]:
        """Gives the frame's faces their track IDs (the per-face stages reuse work by them); returns the
        events of tracks that ended first (a new image of a folder, a new resolution, a new connection)."""
        events = []
        image = result.frame.image
        if self.stills:
            events = self.close_tracks()
        elif self._shape is not None and image.shape != self._shape:
            # A camera switched resolution: boxes of the old geometry mean nothing now.
            log.warning("source %r: frame size changed to %s; tracks reset", self.name, image.shape)
            events = self.close_tracks()
        elif result.frame.session != self._session:
            events = self.close_tracks()  # a new connection: what it shows does not continue the old tracks
        self._shape, self._session = image.shape, result.frame.session
        cuts = self.events.cuts_seen
        self.events.associate(result)
        if self.events.cuts_seen > cuts:  # the faces followed so far are gone: the next frame is searched in full
            self.stages.regions.search_in_full(self.name)
        return events

    def identify(self, result: FrameResult) -> list[TrackEvent]:
        """The frame's track events: starts, identity decisions, occlusion changes, ends."""
        events = self.events.update(result)
        self._forget(events, self.events.take_absorbed())
        self.last_result = result
        return events

    def submit(self, result: FrameResult) -> None:
        """Hands the frame to its render thread (or counts it done, when the stream has no frame sinks)."""
        if self.render:
            self.render.submit(result, f"{self.name}  frame {result.frame.index}  {self.counters.fps_out:.1f} fps")
        else:
            self._frame_done(result)

    # -- lifecycle ------------------------------------------------------------------------------

    def lost_its_tracks(self) -> bool:
        """Whether the stream has open tracks but lost the connection they were seen on (a camera that went
        down): nothing it shows next continues them, so they end now rather than when it comes back."""
        return self.source.live and bool(self.events.open_tracks) and not self.stills and (
            self.source.sessions != self._session or not self.source.connected.is_set())

    def close_tracks(self) -> list[TrackEvent]:
        """Ends every open track; forgets what was kept for them."""
        events = self.events.close(self.last_result)
        self.stages.forget_stream(self.name)
        return events

    def end(self) -> list[TrackEvent]:
        """The stream's last frame was processed: its tracks end, and all that was kept for it goes."""
        self.ended = True
        events = self.close_tracks()
        self.stages.forget_ended_stream(self.name)
        return events

    def close(self) -> None:
        """Finishes the stream's frame sinks (videos closed, playable); later calls do nothing."""
        if self.render and not self._closed:
            self._closed = True
            self.render.close()

    def status(self) -> StreamStatus:
        return stream_status(self.source, self.counters)

    def files(self) -> list:
        return self.render.files() if self.render else []

    def _forget(self, events: list[TrackEvent], absorbed: list[int]) -> None:
        for track_id in [e.track_id for e in events if e.kind is EventKind.TRACK_END] + absorbed:
            self.stages.forget_track(self.name, track_id)

    def _frame_done(self, result: FrameResult) -> None:
        self.counters.frame_done(result.frame.decoded_at, result.stage_s)
