"""Adding and removing cameras while a run runs (web.control), over its REST endpoint: a real `streamer run`, a
real RTSP camera with a password, real files, as an integrator's script would drive them."""

from __future__ import annotations

import json
import signal
import time

import pytest

from streamer.demo import build_demo
from tests.conftest import count_frames
from tests.processes import StreamerProcess, bearer, call, get_json, get_text

TOKEN = "s3cret-control-token"


def listed(url: str) -> dict[str, dict]:
    return {s["name"]: s for s in get_json(url + "api/streams?token=" + TOKEN)}


def wait_until(check, seconds: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s: {what}")


def test_cameras_are_added_and_removed_while_the_run_goes_on(tmp_path, rtsp_server):
    password = "pa55-w0rd!"
    camera = rtsp_server(user="op", password=password)
    # 30 s of a face walking by, delivered at its own pace.
    build_demo(tmp_path / "lobby", frames=300, size=(640, 360), fps=10, faces=1)
    lobby = tmp_path / "lobby" / "demo.mp4"
    out = tmp_path / "out"
    config = tmp_path / "run.yaml"
    config.write_text(
        f"sources:\n  - {{name: lobby, uri: {lobby}, realtime: true}}\n"
        f"web: {{enabled: true, port: 0, token: {TOKEN}, control: true}}\n"
        f"output: {{dir: {out}}}\n")
    run = StreamerProcess(config)
    try:
        url = run.live_view_url()
        wait_until(lambda: listed(url).get("lobby", {}).get("frames_out", 0) > 5, what="lobby processing")
        api = url + "api/streams"
        door = {"name": "door", "uri": camera.url()}

        # Changing the run takes the token as a Bearer header, and JSON; a query's token is not enough.
        assert call("POST", api + "?token=" + TOKEN, door)[0] == 401
        assert call("POST", api, door, {**bearer(TOKEN), "Content-Type": "text/plain"})[0] == 415
        assert call("POST", api, door, bearer("wrong"))[0] == 401
        # Bad entries are refused in one line naming the culprit, and nothing is added.
        code, answer = call("POST", api, {"name": "../door", "uri": camera.url()}, bearer(TOKEN))
        assert code == 400 and answer["error"].startswith("source: name:"), answer
        code, answer = call("POST", api, {"name": "gone", "uri": str(tmp_path / "nowhere.mp4")}, bearer(TOKEN))
        assert code == 422 and "nowhere.mp4" in answer["error"], answer
        code, answer = call("POST", api, {"name": "lobby", "uri": str(lobby)}, bearer(TOKEN))
        assert code == 409 and "lobby" in answer["error"]
        assert set(listed(url)) == {"lobby"}

        # A camera added: decoding within seconds, beside the first stream, in the JSON and /metrics.
        asked = time.monotonic()
        code, added = call("POST", api, door, bearer(TOKEN))
        answered = time.monotonic() - asked
        assert code == 201 and added["name"] == "door", added
        wait_until(lambda: listed(url).get("door", {}).get("frames_out", 0) > 0, what="door processing")
        print(f"camera added: answered in {answered:.2f} s, its first frame processed "
              f"{time.monotonic() - asked:.2f} s after the request")
        wait_until(lambda: listed(url).get("door", {}).get("frames_out", 0) > 5, what="door processing on")
        metrics = get_text(url + "metrics?token=" + TOKEN)
        assert 'streamer_source_up{stream="door"} 1' in metrics
        assert call("POST", api, door, bearer(TOKEN))[0] == 409

        # The first stream removed: gone from the view, its recording finished and playable at once.
        asked = time.monotonic()
        code, final = call("DELETE", api + "/lobby", headers=bearer(TOKEN))
        print(f"stream removed (tracks ended, recording finished) in {time.monotonic() - asked:.2f} s")
        assert code == 200 and final["name"] == "lobby" and final["frames_out"] > 5, final
        assert set(listed(url)) == {"door"}
        [recording] = (out / "latest").glob("lobby*.mp4")
        assert count_frames(recording) >= final["frames_out"] - 1
        events = [json.loads(line) for line in (out / "latest" / "events.jsonl").read_text().splitlines()]
        lobby_events = [e["type"] for e in events if e["stream"] == "lobby"]
        assert "track_start" in lobby_events and lobby_events[-1] == "track_end", lobby_events  # its tracks ended
        assert call("DELETE", api + "/lobby", headers=bearer(TOKEN))[0] == 404
        # Its name stays taken: a new stream must not write over its recording.
        assert call("POST", api, {"name": "lobby", "uri": str(lobby)}, bearer(TOKEN))[0] == 409
        frames_before = listed(url)["door"]["frames_out"]
        wait_until(lambda: listed(url)["door"]["frames_out"] > frames_before + 5, what="door going on")
    finally:
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGINT)
        code = run.finish(timeout=90)
    assert code == 130, run.stderr[-3000:]
    manifest = json.loads((out / "latest" / "run.json").read_text())
    assert [next(k for k in change if k != "at") for change in manifest["streams_changed"]] == ["add", "remove"]
    assert manifest["frames"]["lobby"] > 5 and manifest["frames"]["door"] > 5
    assert count_frames(next((out / "latest").glob("door*.mp4"))) > 5
    everything = run.stderr + run.stdout + json.dumps(manifest) + json.dumps(added) + json.dumps(final)
    assert password not in everything


def test_control_needs_the_live_view_and_a_token():
    from streamer.config import parse_config
    from streamer.errors import ConfigError

    with pytest.raises(ConfigError, match="web.control needs web.enabled and a web.token"):
        parse_config({"web": {"enabled": True, "control": True}})
    config = parse_config({"web": {"enabled": True, "control": True, "token": "t"}})
    assert config.web.control and not config.sources  # a run may start with no camera and take them later
