"""Ingest: streamer's source against bare PyAV decoding, scaling with streams, and a reconnect soak.

    .venv/bin/python benchmarks/ingest.py overhead [--frames 1500]
    .venv/bin/python benchmarks/ingest.py streams [--counts 1 2 4 8]
    .venv/bin/python benchmarks/ingest.py soak [--minutes 10] [--every 30]
    .venv/bin/python benchmarks/ingest.py faults [--repeats 5]

overhead: the same file decoded to BGR arrays by a bare PyAV loop and by streamer's PyAVSource
(thread, bounded queue, stats), alternating 3 times; reports the median of each and the ratio.
streams: N sources on the same file at once, total decoded FPS (files, every frame).
soak: a live RTSP camera (the tests' gst-rtsp-server) killed and restarted every --every seconds,
sampling RSS, threads and open descriptors of this process; flat lines mean nothing leaks.
faults: a live RTSP camera (stall_timeout_s 2, backoff 0.2..1 s) killed and restarted, paused
(SIGSTOP) for 4 s, its connection dropped or blackholed for 4 s by a TCP proxy; for each fault the
time to notice it (stall detected) and to have frames again after the camera is back.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamer.bench.decode import bare_pyav, streamer_sources  # noqa: E402
from streamer.config import SourceConfig  # noqa: E402
from streamer.sources import PyAVSource  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CLIP = SHARED / "data" / "video" / "intel_one-by-one-person-detection.mp4"


def overhead(args) -> None:
    bare, ours = [], []
    for _ in range(3):
        bare.append(bare_pyav(CLIP, args.frames))
        ours.append(streamer_sources(CLIP, args.frames))
    b, o = statistics.median(bare), statistics.median(ours)
    print(f"bare PyAV decode: {b:.0f} fps; streamer source: {o:.0f} fps; streamer/bare = {o / b:.3f} "
          f"(overhead {100 * (1 - o / b):.1f}%) on {CLIP.name}, {args.frames} frames, median of 3")


def streams(args) -> None:
    for count in args.counts:
        fps = streamer_sources(CLIP, args.frames, count)
        print(f"{count} stream(s): {fps:.0f} decoded frames/s in total, {fps / count:.0f} per stream")


def soak(args) -> None:
    from tests.rtsp import RtspServer, rtsp_available

    ok, why = rtsp_available()
    if not ok:
        sys.exit(why)
    server = RtspServer(CLIP).start()
    source = PyAVSource(SourceConfig(name="soak", uri=server.url(), backoff_initial_s=0.2, backoff_max_s=2.0))
    source.start()
    consumer_stop = threading.Event()

    def consume():
        while not consumer_stop.is_set():
            source.read(0.1)

    threading.Thread(target=consume, daemon=True).start()
    started = time.monotonic()
    next_kill = started + args.every
    print("minute  rss_MiB  threads  fds  decoded  reconnects")
    next_sample = started
    try:
        while time.monotonic() - started < args.minutes * 60:
            now = time.monotonic()
            if now >= next_kill:
                server.kill()
                server.start()
                next_kill = now + args.every
            if now >= next_sample:
                rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
                fds = len(os.listdir("/proc/self/fd"))
                stats = source.stats
                print(f"{(now - started) / 60:6.1f}  {rss:7.1f}  {threading.active_count():7d}  {fds:3d}  "
                      f"{stats.decoded:7d}  {stats.reconnects:10d}", flush=True)
                next_sample = now + 30
            time.sleep(0.2)
    finally:
        consumer_stop.set()
        source.stop()
        server.kill()


def faults(args) -> None:
    from tests.proxy import FaultProxy
    from tests.rtsp import RtspServer, rtsp_available

    ok, why = rtsp_available()
    if not ok:
        sys.exit(why)
    server = RtspServer(CLIP).start()
    proxy = FaultProxy(("127.0.0.1", server.port)).start()
    source = PyAVSource(SourceConfig(name="cam", uri=f"rtsp://127.0.0.1:{proxy.port}/cam", stall_timeout_s=2.0,
                                     backoff_initial_s=0.2, backoff_max_s=1.0, open_timeout_s=3.0))
    source.start()

    def wait_for(condition, limit: float = 30.0) -> float:
        started = time.monotonic()
        while not condition() and time.monotonic() - started < limit:
            source.read(0.02)
        return time.monotonic() - started

    def next_frame_after(moment: float) -> float:
        while True:
            frame = source.read(0.05)
            if frame is not None and frame.decoded_at > moment:
                return frame.decoded_at - moment

    def restart():
        server.kill()
        server.start()

    def hold(fault, undo, seconds: float = 4.0):
        def run():
            stalls = source.stats.stalls
            fault()
            noticed = wait_for(lambda: source.stats.stalls > stalls, seconds)
            time.sleep(max(0.0, seconds - noticed))
            undo()
            return noticed if source.stats.stalls > stalls else None
        return run

    def instant(fault):
        def run():
            fault()
            return None
        return run

    cases = {
        "server killed, restarted at once": instant(restart),
        "server paused (SIGSTOP) 4 s": hold(server.pause, server.resume),
        "connection dropped by the proxy": instant(proxy.drop),
        "link blackholed by the proxy 4 s": hold(proxy.blackhole, proxy.restore),
    }
    print("| fault | stall noticed after (s) | frames again after (s), median / max |\n|---|---|---|")
    try:
        next_frame_after(time.monotonic())
        for name, run in cases.items():
            noticed, back = [], []
            for _ in range(args.repeats):
                time.sleep(1.0)
                noticed_after = run()
                back_at = time.monotonic()
                back.append(next_frame_after(back_at))
                if noticed_after is not None:
                    noticed.append(noticed_after)
            noticed_text = f"{statistics.median(noticed):.2f} / {max(noticed):.2f}" if noticed else "-"
            print(f"| {name} | {noticed_text} | {statistics.median(back):.2f} / {max(back):.2f} |", flush=True)
    finally:
        source.stop()
        proxy.close()
        server.kill()
    print(f"reconnects {source.stats.reconnects}, stalls {source.stats.stalls}, "
          f"connect failures {source.stats.connect_failures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("overhead")
    p.add_argument("--frames", type=int, default=1500)
    p = sub.add_parser("streams")
    p.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--frames", type=int, default=600)
    p = sub.add_parser("soak")
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--every", type=float, default=30)
    p = sub.add_parser("faults")
    p.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    {"overhead": overhead, "streams": streams, "soak": soak, "faults": faults}[args.mode](args)


if __name__ == "__main__":
    main()
