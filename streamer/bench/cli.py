"""``streamer bench``: its arguments, and the run that writes the report."""

from __future__ import annotations

from pathlib import Path

from streamer.errors import ConfigError, StreamerError


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"bench: size {text!r} is not WIDTHxHEIGHT, e.g. 1280x720") from None
    return width, height


def add_parser(sub) -> None:
    from streamer.bench.suite import SECTIONS

    p = sub.add_parser("bench", help="FPS, latency per stage, streams and faces scaling, against a per-frame loop")
    p.add_argument("--config", help="the stages to measure (sources are the bench's own; default: offline defaults)")
    p.add_argument("--clip", action="append", default=[], help="a video of your own, run as 1 stream (repeatable)")
    p.add_argument("--out", default="out/bench", help="report folder: bench.json, bench.md, *.png")
    p.add_argument("--only", nargs="+", choices=SECTIONS, help=f"sections to run (default all: {' '.join(SECTIONS)})")
    p.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--faces", type=int, nargs="+", default=[0, 1, 4, 8], help="faces per frame of generated clips")
    p.add_argument("--multi-faces", type=int, default=4, help="faces per frame of the streams sweep's clip")
    p.add_argument("--size", default="1280x720", help="generated clips' frame size")
    p.add_argument("--fps", type=int, default=15, help="generated clips' frame rate")
    p.add_argument("--frames", type=int, default=60, help="frames per stream and case")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    p.add_argument("--no-baseline", action="store_true", help="skip the per-frame loop a user would write")
    p.add_argument("--capacity-size", help="real-time capacity clip size (default: 1920x1080 on a GPU, else --size)")
    p.add_argument("--capacity-fps", type=int, default=25, help="real-time capacity: the cameras' frame rate")
    p.add_argument("--capacity-seconds", type=float, default=10.0, help="real-time capacity: seconds per try")
    p.add_argument("--latency-bound-ms", type=float, default=1000.0, help="real-time capacity: p99 latency bound")
    p.add_argument("--max-streams", type=int, default=64, help="real-time capacity: the most streams tried")
    p.add_argument("--capacity-start", type=int, default=1, help="real-time capacity: the first stream count tried "
                   "(then doubled while held, bisected after)")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from streamer.bench.inputs import probe
    from streamer.bench.report import write_report
    from streamer.bench.suite import SECTIONS, BenchPlan, Suite
    from streamer.config import load_config, parse_config

    config = load_config(args.config) if args.config else parse_config({})
    device = config.engine.select_device()
    clips = [Path(c) for c in args.clip]
    for clip in clips:
        probe(clip)  # a bad clip fails now, with its name, not after minutes of measuring
    size = _size(args.size)
    plan = BenchPlan(
        config=config.model_dump(mode="json", exclude_unset=True, exclude={"sources"}),
        config_label=f"{args.config or 'offline defaults'} on {device}",
        out=Path(args.out), size=size, fps=args.fps, frames=args.frames, streams=args.streams, faces=args.faces,
        multi_faces=args.multi_faces, clips=clips, batch_sizes=args.batch_sizes, baseline=not args.no_baseline,
        capacity_size=_size(args.capacity_size) if args.capacity_size else (1920, 1080) if device.is_cuda else size,
        capacity_fps=args.capacity_fps, capacity_seconds=args.capacity_seconds,
        latency_bound_ms=args.latency_bound_ms, max_streams=args.max_streams, capacity_start=args.capacity_start,
        sections=tuple(args.only or SECTIONS),
    )
    print(f"bench: {plan.config_label}; report in {plan.out}")
    report = Suite(plan, say=lambda line: print(line, flush=True)).run()
    for path in write_report(report, plan.out):
        print(f"wrote {path}")
    if report["failures"]:
        first = report["failures"][0]
        more = f" (and {len(report['failures']) - 1} more, listed in bench.md)" if len(report["failures"]) > 1 else ""
        raise StreamerError(f"{first}{more}")
    return 0
