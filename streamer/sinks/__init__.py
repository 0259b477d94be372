"""Outputs. Events: the JSON-lines file, the webhook and MQTT (after the store, which the run writes first).
Frames: each stream's recording, the live view and the RTSP push. Which ones a run has is decided here,
from the config: the loop only sees the ``EventSink`` and ``FrameSink`` protocols (sinks/base.py)."""

from __future__ import annotations

from pathlib import Path

from streamer.sinks.base import AnnotatedFrame, EventSink, FrameSink, FrameSinkFactory, StreamInfo


def event_sinks(output, run_dir: Path, alerts=()) -> list[EventSink]:
    """``output``: the config's ``output`` section; files go into the run's own folder. ``alerts``: the config's
    alert rules, raised over the events and handed to the sinks that take alerts, after them."""
    sinks: list[EventSink] = []
    if output.events:
        from streamer.sinks.events import JsonLinesEvents

        sinks.append(JsonLinesEvents(run_dir / "events.jsonl"))
    if output.webhook:
        from streamer.sinks.webhook import WebhookEvents

        sinks.append(WebhookEvents(output.webhook))
    if output.mqtt:
        from streamer.sinks.mqtt import MqttEvents

        sinks.append(MqttEvents(output.mqtt))
    if alerts:
        from streamer.alerts import AlertSink

        sinks.append(AlertSink(alerts, sinks))
    return sinks


def frame_sinks(output, run_dir: Path, live_view=None) -> list[FrameSinkFactory]:
    factories: list[FrameSinkFactory] = []
    if output.video:
        from streamer.sinks.recording import Recording

        factories.append(lambda stream: Recording(run_dir, stream, output.codec, output.crf, output.segment_s))
    if live_view is not None:
        factories.append(lambda stream: LiveFrames(live_view, stream.name))
    if output.rtsp_push:
        from streamer.sinks.rtsp_push import RtspPush

        factories.append(lambda stream: RtspPush(output.rtsp_push.replace("{stream}", stream.name), stream.name,
                                                 stream.fps, stream.size, output.rtsp_push_options))
    return factories


class LiveFrames:
    """One stream's annotated frames to the live view (which encodes them only while someone watches)."""

    def __init__(self, live_view, stream: str):
        self.live_view, self.stream = live_view, stream

    def write(self, frame: AnnotatedFrame) -> None:
        self.live_view.publish(self.stream, frame.image)

    def close(self) -> None:
        pass

    def files(self) -> list:
        return []


__all__ = ["AnnotatedFrame", "EventSink", "FrameSink", "FrameSinkFactory", "LiveFrames", "StreamInfo", "event_sinks",
           "frame_sinks"]
