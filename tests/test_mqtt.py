"""Events to a real MQTT broker (Debian's mosquitto, with a password), from a real `streamer run` on a face clip, as
a home-automation or VMS integration subscribes to them: Frigate-like topics, a retained availability, every
event delivered once the broker is back from a restart."""

from __future__ import annotations

import json
import time

from streamer.demo import build_demo
from tests.mqtt_broker import PASSWORD, Subscriber
from tests.processes import StreamerProcess


def _config(tmp_path, broker, clip, realtime: bool, extra: str = "") -> tuple:
    config = tmp_path / "run.yaml"
    url = f"mqtt://streamer:${{MQTT_PASSWORD}}@127.0.0.1:{broker.port}"  # the password from the environment
    config.write_text(f"sources: [{{name: lobby, uri: '{clip}', realtime: {str(realtime).lower()}}}]\n"
                      f"output: {{dir: '{tmp_path / 'out'}', mqtt: {{url: '{url}', drain_s: 10}}}}\n" + extra)
    return config, {"MQTT_PASSWORD": PASSWORD}


def _events(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "out" / "latest" / "events.jsonl").read_text().splitlines()]


def _wait_for(check, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not check():
        time.sleep(0.1)


def test_every_event_is_published_per_camera_with_a_retained_availability_and_alerts(tmp_path, mqtt_broker):
    build_demo(tmp_path / "clip", frames=60, size=(640, 360), fps=10, faces=2)
    gallery = tmp_path / "clip" / "gallery"
    watched = sorted(p.stem for p in gallery.iterdir())[0]
    subscriber = Subscriber(mqtt_broker)
    config, env = _config(tmp_path, mqtt_broker, tmp_path / "clip" / "demo.mp4", realtime=False,
                          extra=f"gallery: {{dir: '{gallery}'}}\nalerts: [{{name: watchlist, person: {watched}}}]\n")
    run = StreamerProcess(config, env=env)
    code = run.finish(timeout=180)
    assert code == 0, run.stderr[-3000:]
    lines = _events(tmp_path)
    events = [e for e in lines if e["type"] != "alert"]
    assert events, "the clip's faces made no events"
    _wait_for(lambda: len(subscriber.on("streamer/lobby/face")) >= len(events), 10)
    # The watched person named: one alert (its cool-down holds the rest of the clip), in events.jsonl and on MQTT.
    [alert] = [e for e in lines if e["type"] == "alert"]
    assert alert["alert"] == "watchlist" and alert["identity"] == watched and alert["stream"] == "lobby"
    assert [json.loads(m) for m in subscriber.on("streamer/alerts")] == [alert]
    assert [json.loads(m) for m in subscriber.on("streamer/lobby/alert")] == [alert]
    assert f"alert watchlist: {watched} seen on lobby" in run.stderr
    published = [json.loads(m) for m in subscriber.on("streamer/events")]
    assert [e["sighting"] for e in published] == [e["sighting"] for e in events]  # each once, in order
    assert [json.loads(m) for m in subscriber.on("streamer/lobby/face")] == published
    availability = subscriber.on("streamer/available")
    assert availability[:1] == ["online"] and availability[-1] == "offline", availability
    subscriber.close()
    # A subscriber arriving afterwards learns at once that the run is gone (retained).
    late = Subscriber(mqtt_broker, "streamer/available", client_id="late-subscriber")
    _wait_for(lambda: late.messages, 5)
    assert late.messages == [("streamer/available", "offline", True)]
    late.close()
    assert f"mqtt mqtt://127.0.0.1:{mqtt_broker.port}: {2 * len(events) + 2 + 2} messages delivered" in run.stdout
    assert PASSWORD not in run.stderr + run.stdout + (tmp_path / "out" / "latest" / "run.json").read_text()


def test_events_wait_while_the_broker_restarts_and_all_arrive(tmp_path, mqtt_broker):
    # 15 s of faces at their own pace: the broker is away from the 4th second to the 8th.
    build_demo(tmp_path / "clip", frames=150, size=(640, 360), fps=10, faces=2)
    subscriber = Subscriber(mqtt_broker)
    config, env = _config(tmp_path, mqtt_broker, tmp_path / "clip" / "demo.mp4", realtime=True)
    run = StreamerProcess(config, env=env)
    run.wait_for_line(r"^lobby")
    time.sleep(4)
    mqtt_broker.stop()
    time.sleep(4)
    mqtt_broker.start()
    code = run.finish(timeout=180)
    assert code == 0, run.stderr[-3000:]
    assert "connection lost" in run.stderr and "connected again" in run.stderr, run.stderr[-3000:]
    events = [e for e in _events(tmp_path) if e["type"] != "alert"]
    _wait_for(lambda: len({json.loads(m)["sighting"] for m in subscriber.on("streamer/events")}) >= len(events), 20)
    delivered = {json.loads(m)["sighting"] for m in subscriber.on("streamer/events")}
    assert delivered == {e["sighting"] for e in events}, (len(delivered), len(events))
    subscriber.close()
