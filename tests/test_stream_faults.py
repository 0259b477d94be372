"""Live sources against a real RTSP server that dies, stalls, refuses and changes resolution."""

from __future__ import annotations

import logging
import os
import threading
import time

from streamer.config import SourceConfig
from streamer.sources import PyAVSource


def live_source(url: str, **overrides) -> PyAVSource:
    settings = dict(name="cam", uri=url, backoff_initial_s=0.2, backoff_max_s=1.0, stall_timeout_s=2.0,
                    open_timeout_s=3.0)
    settings.update(overrides)
    return PyAVSource(SourceConfig(**settings))


def frames_within(source: PyAVSource, count: int, seconds: float) -> list:
    frames, deadline = [], time.monotonic() + seconds
    while len(frames) < count and time.monotonic() < deadline:
        frame = source.read(0.1)
        if frame is not None:
            frames.append(frame)
    return frames


def test_camera_down_at_start_is_picked_up_when_it_comes_up(rtsp_server):
    server = rtsp_server()
    server.kill()
    source = live_source(server.url())
    source.open()  # a live source must not fail here
    source.start()
    try:
        time.sleep(1.5)
        assert source.stats.connect_failures >= 2 and not source.connected.is_set()
        server.start()
        started = time.monotonic()
        assert len(frames_within(source, 5, 15)) == 5
        assert time.monotonic() - started < 1.0 + 3.0 + 2.0  # one backoff step (capped at 1 s) + connect + frames
    finally:
        source.stop()


def test_reconnects_after_the_server_dies(rtsp_server):
    server = rtsp_server()
    source = live_source(server.url())
    source.start()
    try:
        assert len(frames_within(source, 10, 15)) == 10
        server.kill()
        time.sleep(1.0)
        server.start()
        restarted = time.monotonic()
        assert len(frames_within(source, 10, 15)) == 10
        assert time.monotonic() - restarted < 8
        assert source.stats.reconnects == 1
    finally:
        source.stop()


def test_a_stall_is_detected_within_its_timeout_and_recovers(rtsp_server):
    server = rtsp_server()
    source = live_source(server.url(), stall_timeout_s=2.0)
    source.start()
    try:
        assert len(frames_within(source, 5, 15)) == 5
        server.pause()  # connected, but no packets any more
        paused = time.monotonic()
        while source.stats.stalls == 0 and time.monotonic() - paused < 10:
            source.read(0.1)
        detected_after = time.monotonic() - paused
        assert source.stats.stalls == 1
        assert detected_after < 2.0 + 1.5  # the configured 2 s, plus buffered frames and scheduling
        server.resume()
        assert len(frames_within(source, 5, 20)) == 5
        assert source.stats.reconnects >= 1
    finally:
        server.resume()
        source.stop()


def test_stop_returns_within_2_s_while_the_camera_hangs(rtsp_server):
    server = rtsp_server()
    source = live_source(server.url(), stall_timeout_s=10.0)
    source.start()
    assert len(frames_within(source, 3, 15)) == 3
    server.pause()
    time.sleep(0.5)
    started = time.monotonic()
    source.stop()
    assert time.monotonic() - started < 2.2
    server.resume()


def test_a_dead_camera_does_not_slow_a_live_one(rtsp_server):
    server = rtsp_server()
    dead = live_source("rtsp://127.0.0.1:9/none", name="dead")
    live = live_source(server.url(), name="live")
    dead.start()
    live.start()
    try:
        assert len(frames_within(live, 1, 15)) == 1
        started = time.monotonic()
        frames = frames_within(live, 1000, 4.0)
        fps = len(frames) / (time.monotonic() - started)
        assert fps >= 8.0, fps  # the server sends 10 fps
        assert dead.stats.connect_failures >= 3
    finally:
        dead.stop()
        live.stop()


def test_wrong_password_is_retried_and_never_shown(rtsp_server, caplog):
    password = "S3cret:P@ss/word"
    server = rtsp_server(user="viewer", password=password)
    wrong = live_source(server.url(password="n0t-" + password))
    right = live_source(server.url(), name="right")
    with caplog.at_level(logging.DEBUG):
        wrong.start()
        right.start()
        try:
            assert len(frames_within(right, 3, 15)) == 3
            time.sleep(1.0)
        finally:
            wrong.stop()
            right.stop()
    text = caplog.text + str(wrong.last_error) + wrong.display_uri
    assert "401" in str(wrong.last_error) and "viewer:***@" in str(wrong.last_error)
    for secret in (password, "n0t-" + password, "S3cret%3AP%40ss%2Fword"):
        assert secret not in text


def test_resolution_change_comes_through_a_reconnect(rtsp_server):
    server = rtsp_server(width=640)
    source = live_source(server.url())
    source.start()
    try:
        assert frames_within(source, 3, 15)[-1].image.shape[1] == 640
        server.kill()
        server.start(width=320)
        frames = frames_within(source, 40, 20)
        assert frames and frames[-1].image.shape[1] == 320
    finally:
        source.stop()


def test_no_threads_or_descriptors_leak_across_reconnects(rtsp_server):
    server = rtsp_server()
    threads_before = threading.active_count()
    fds_before = len(os.listdir("/proc/self/fd"))
    source = live_source(server.url())
    source.start()
    for _ in range(3):
        assert len(frames_within(source, 5, 15)) == 5
        server.kill()
        server.start()
    assert len(frames_within(source, 5, 15)) == 5
    source.stop()
    # Under load, frames still buffered from a killed connection can satisfy the wait above, so two
    # restarts may fold into one reconnect; what matters here is that nothing is left behind.
    assert source.stats.reconnects >= 1
    time.sleep(0.5)
    assert threading.active_count() == threads_before
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 1


def test_annotated_video_is_pushed_to_an_rtsp_server(rtsp_server, tmp_path):
    from tests.conftest import run_cli, write_clip

    received = tmp_path / "received.ts"
    server = rtsp_server(record=received)
    clip = write_clip(tmp_path / "lobby.mp4", frames=30, size=(320, 240), fps=10)
    config = tmp_path / "c.yaml"
    config.write_text(
        f"sources:\n  - {{name: lobby, uri: '{clip}', realtime: true}}\n"
        f"output:\n  dir: {tmp_path / 'out'}\n  rtsp_push: 'rtsp://127.0.0.1:{server.port}/cam'\n"
    )
    result = run_cli("run", str(config), "-q", timeout=120)
    assert result.returncode == 0, result.stderr
    time.sleep(1.0)  # the server writes what it received as it arrives
    import av

    with av.open(str(received)) as container:
        size = (container.streams.video[0].width, container.streams.video[0].height)
    assert size == (320, 240)
    # Paced at 10 fps, the pipeline keeps up: (almost) every frame pushed. The server is still writing the file:
    # the packet it is in the middle of does not decode, and is not counted.
    decodable = 0
    with av.open(str(received)) as container:
        for packet in container.demux(video=0):
            try:
                decodable += len(packet.decode())
            except av.error.InvalidDataError:
                pass
    assert decodable >= 25, decodable


def rate_over(source: PyAVSource, seconds: float) -> float:
    started = time.monotonic()
    frames = frames_within(source, 10_000, seconds)
    return len(frames) / (time.monotonic() - started)


def test_a_dropped_connection_is_reconnected_at_once(rtsp_server):
    from tests.proxy import FaultProxy

    server = rtsp_server()
    proxy = FaultProxy(("127.0.0.1", server.port)).start()
    source = live_source(f"rtsp://127.0.0.1:{proxy.port}/cam")
    source.start()
    try:
        assert len(frames_within(source, 5, 15)) == 5
        proxy.drop()  # the connection is reset under the client's feet (NAT timeout, camera reboot)
        dropped = time.monotonic()
        while source.stats.reconnects == 0 and time.monotonic() - dropped < 10:
            source.read(0.1)
        assert source.stats.reconnects == 1
        assert time.monotonic() - dropped < 3.0  # noticed at once (no waiting for the stall timeout)
        assert len(frames_within(source, 5, 10)) == 5
    finally:
        source.stop()
        proxy.close()


def test_a_blackholed_link_is_a_stall_and_other_streams_keep_their_rate(rtsp_server):
    from tests.proxy import FaultProxy

    server = rtsp_server()
    proxy = FaultProxy(("127.0.0.1", server.port)).start()
    behind_proxy = live_source(f"rtsp://127.0.0.1:{proxy.port}/cam", name="far", stall_timeout_s=2.0)
    direct = live_source(server.url(), name="near")
    behind_proxy.start()
    direct.start()
    try:
        assert len(frames_within(behind_proxy, 5, 15)) == 5 and len(frames_within(direct, 5, 15)) == 5
        proxy.blackhole()  # bytes stop; no FIN, no RST: only a timeout can tell
        blackholed = time.monotonic()
        while behind_proxy.stats.stalls == 0 and time.monotonic() - blackholed < 10:
            behind_proxy.read(0.1)
        assert behind_proxy.stats.stalls == 1
        assert time.monotonic() - blackholed < 2.0 + 1.5
        # While the far camera's link is dead and its reconnects hang until open_timeout_s, the near
        # one (same process, same server) keeps the server's 10 fps.
        assert rate_over(direct, 3.0) >= 8.0
        # The first reconnect starts after the stall and hangs for open_timeout_s (3 s): it has failed by about
        # 5.2 s after the blackhole, a hair after the 3 s of rate above; wait for it, within a bound.
        while behind_proxy.stats.connect_failures == 0 and time.monotonic() - blackholed < 2.0 + 0.2 + 3.0 + 2.0:
            behind_proxy.read(0.1)
        assert behind_proxy.stats.connect_failures >= 1 and not behind_proxy.connected.is_set()
        proxy.restore()
        assert len(frames_within(behind_proxy, 5, 15)) == 5
        assert behind_proxy.stats.reconnects >= 1
    finally:
        behind_proxy.stop()
        direct.stop()
        proxy.close()


def test_udp_transport_receives_and_recovers_from_a_server_restart(rtsp_server):
    server = rtsp_server()
    source = live_source(server.url(), options={"rtsp_transport": "udp"}, stall_timeout_s=2.0)
    source.start()
    try:
        assert len(frames_within(source, 10, 15)) == 10
        server.kill()  # over UDP nothing says the camera went away: the stall timeout must catch it
        server.start()
        assert len(frames_within(source, 10, 20)) == 10
        assert source.stats.reconnects >= 1
    finally:
        source.stop()


def test_push_resumes_after_the_receiving_server_restarts(rtsp_server, tmp_path):
    import numpy as np

    from streamer.sinks.rtsp_push import RtspPush
    from tests.conftest import count_frames

    first, second = tmp_path / "first.ts", tmp_path / "second.ts"
    server = rtsp_server(record=first)
    push = RtspPush(f"rtsp://127.0.0.1:{server.port}/cam", "lobby", 10.0, (320, 240), backoff_initial_s=0.2,
                    backoff_max_s=0.5)

    def push_for(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            push.push(np.full((240, 320, 3), push.sent % 250, np.uint8))
            time.sleep(0.1)

    try:
        push_for(3.0)
        sent_before = push.sent
        server.kill()
        server.record = second
        server.start()
        push_for(6.0)
    finally:
        push.close()
    time.sleep(1.0)
    # (first.ts is cut short by kill -9, so what it holds says nothing about the push)
    assert sent_before >= 20
    assert push.reconnects == 1
    assert count_frames(second) >= 20  # most of the 6 s after the restart reached the new server


def test_rtsps_camera_is_verified_against_its_certificate(rtsp_server, tmp_path, caplog):
    from tests.rtsp import self_signed_certificate

    password = "tls-Pa55:word"
    server_pem, camera_cert = self_signed_certificate(tmp_path)
    server = rtsp_server(user="viewer", password=password, tls_cert=server_pem)
    assert server.url().startswith("rtsps://")
    trusted = live_source(server.url(), options={"ca_file": str(camera_cert)})
    untrusted = live_source(server.url(), name="untrusted")  # verification is on by default
    plain = live_source(server.url().replace("rtsps://", "rtsp://"), name="plain")
    with caplog.at_level(logging.DEBUG):
        for source in (trusted, untrusted, plain):
            source.start()
        try:
            assert len(frames_within(trusted, 5, 15)) == 5
            server.kill()
            server.start()
            assert len(frames_within(trusted, 5, 15)) == 5
            assert untrusted.stats.decoded == 0 and untrusted.stats.connect_failures >= 1
            assert plain.stats.decoded == 0 and plain.stats.connect_failures >= 1
        finally:
            for source in (trusted, untrusted, plain):
                source.stop()
    assert "ca_file" in str(untrusted.last_error)  # the error says how to trust the camera
    assert password not in caplog.text + str(untrusted.last_error) + str(plain.last_error)


def test_push_over_tls_needs_a_trusted_server(rtsp_server, tmp_path):
    import numpy as np

    from streamer.sinks.rtsp_push import RtspPush
    from tests.conftest import count_frames
    from tests.rtsp import self_signed_certificate

    server_pem, server_cert = self_signed_certificate(tmp_path)
    received = tmp_path / "received.ts"
    server = rtsp_server(record=received, tls_cert=server_pem)
    url = f"rtsps://127.0.0.1:{server.port}/cam"
    untrusted = RtspPush(url, "a", 10.0, (320, 240), backoff_initial_s=0.2, backoff_max_s=0.5)
    trusted = RtspPush(url, "b", 10.0, (320, 240), {"ca_file": str(server_cert)})
    try:
        for index in range(30):
            image = np.full((240, 320, 3), index * 8, np.uint8)
            untrusted.push(image)
            trusted.push(image)
            time.sleep(0.1)
    finally:
        untrusted.close()
        trusted.close()
    time.sleep(1.0)
    assert untrusted.sent == 0
    assert trusted.sent >= 25 and count_frames(received) >= 20
