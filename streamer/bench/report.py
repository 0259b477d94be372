"""The bench report: JSON as measured, a Markdown summary, and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

from streamer.records import Stage

STAGE_ORDER = tuple(stage.value for stage in Stage)


def _pairs(report: dict, section: str) -> list[tuple[dict, dict | None]]:
    """(streamer case, baseline case or None) for each point of a section, in the order measured."""
    cases = [c for c in report["cases"] if c["section"] == section and c["result"] is not None]
    out = []
    for case in (c for c in cases if c["kind"] == "pipeline"):
        twin = next((c for c in cases if c["kind"] == "baseline" and c["clip"] == case["clip"]
                     and c["streams"] == case["streams"]), None)
        out.append((case, twin))
    return out


def _fmt(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def end_to_end_rows(report: dict) -> list[dict]:
    rows = []
    for section in ("streams", "faces", "clips"):
        for ours, base in _pairs(report, section):
            r, b = ours["result"], base["result"] if base else None
            total = r["latency_ms"].get("total", {})
            rows.append({
                "section": section, "clip": ours["clip"], "streams": ours["streams"],
                "faces_per_frame": ours["faces_per_frame"], "streamer_fps": r["fps"],
                "baseline_fps": b["fps"] if b else None,
                "ratio": round(r["fps"] / b["fps"], 2) if b and b["fps"] else None,
                "p50_ms": total.get("p50"), "p95_ms": total.get("p95"), "p99_ms": total.get("p99"),
                "baseline_p99_ms": b["latency_ms"].get("total", {}).get("p99") if b else None,
                "streamer_rss_mb": r["peak_rss_mb"], "baseline_rss_mb": b["peak_rss_mb"] if b else None,
                "gpu_mb": r["gpu_peak_mb"],
            })
    return rows


def markdown(report: dict) -> str:
    plan = report["plan"]
    lines = [f"# streamer bench — {report['config']}", "",
             f"Machine: {report['machine']['processor']}, {report['machine']['platform']}. "
             f"Generated clips: {plan['size'][0]}x{plan['size'][1]} at {plan['fps']} fps, "
             f"{plan['frames_per_stream']} frames per stream. Both systems write MPEG-4 video.", ""]
    if report.get("stages"):
        s = report["stages"]
        lines += ["## Each stage alone", "", *[f"- {m}" for m in s["models"]],
                  f"- detect: {s['detect_ms_per_frame']} ms per {s['frame_size'][0]}x{s['frame_size'][1]} frame; "
                  f"annotate + encode: {s['output_ms_per_frame']} ms per frame", ""]
        if s["batches"]:
            lines += ["| batch | occlusion ms/face | inpaint ms/face | embed ms/face |", "|---|---|---|---|"]
            for size, row in s["batches"].items():
                lines.append(f"| {size} | {row['occlusion']['ms_per_face']} | {row['inpaint']['ms_per_face']} | "
                             f"{row['embed']['ms_per_face']} |")
            lines.append("")
    if report.get("decode"):
        d = report["decode"]
        lines += ["## Decode ceiling", "",
                  f"Bare PyAV decode {d['bare_fps']} fps; streamer's source {d['source_fps']} fps: "
                  f"overhead {d['overhead_pct']}%. All streams together: "
                  + ", ".join(f"{n} streams {fps} fps" for n, fps in d["streams"].items()) + ".", ""]
    rows = end_to_end_rows(report)
    if rows:
        lines += ["## End to end: streamer against the loop a user would write", "",
                  "| clip | streams | faces/frame | streamer fps | baseline fps | streamer / baseline | "
                  "latency p50 / p95 / p99 ms | baseline p99 ms | peak RSS MB (streamer / baseline) | GPU MB |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            faces = "?" if r["faces_per_frame"] is None else r["faces_per_frame"]
            latency = " / ".join(_fmt(r[k], 0) for k in ("p50_ms", "p95_ms", "p99_ms"))
            lines.append(
                f"| {r['clip']} | {r['streams']} | {faces} | {r['streamer_fps']} | {_fmt(r['baseline_fps'], 2)} | "
                f"**{_fmt(r['ratio'], 2)}×** | {latency} | {_fmt(r['baseline_p99_ms'], 0)} | "
                f"{_fmt(r['streamer_rss_mb'], 0)} / {_fmt(r['baseline_rss_mb'], 0)} | {_fmt(r['gpu_mb'], 0)} |")
        lines += ["", "Latency here is under full load (files read as fast as the pipeline takes them), queueing "
                  "included; real-time latency is in the capacity section.", ""]
        lines += stage_latency_table(report)
    if report.get("capacity"):
        c = report["capacity"]
        lines += ["## Real-time capacity", "",
                  f"**{c['streams_held']} streams** of {c['clip']} held at {c['source_fps']} fps "
                  f"(each keeping ≥98% of its frames, p99 latency ≤ {c['latency_bound_ms']:.0f} ms).", "",
                  "| streams | held | frames kept (worst stream) | p99 latency ms | fps per stream |",
                  "|---|---|---|---|---|"]
        for n, t in c["tried"].items():
            fps = ", ".join(f"{v:.1f}" for v in t["stream_fps"].values())
            held = "yes" if t["held"] else "failed" if t.get("error") else "no"
            lines.append(f"| {n} | {held} | {100 * t['min_kept']:.1f}% | {_fmt(t['p99_ms'], 0)} | {fps} |")
        lines.append("")
    if report.get("failures"):
        lines += ["## Failed cases", "", "Their figures are missing above; every other case ran.", "",
                  *[f"- {error}" for error in report["failures"]], ""]
    return "\n".join(lines)


def stage_latency_table(report: dict) -> list[str]:
    cases = [c for c in report["cases"] if c["kind"] == "pipeline" and c["section"] in ("streams", "capacity")
             and c["result"] is not None]
    if not cases:
        return []
    lines = ["## Latency per stage (decode to annotated output), ms p50 / p95 / p99", "",
             "| case | " + " | ".join(STAGE_ORDER) + " | total |", "|---|" + "---|" * (len(STAGE_ORDER) + 1)]
    for case in cases:
        latency = case["result"]["latency_ms"]
        cells = [f"{latency[s]['p50']:.0f} / {latency[s]['p95']:.0f} / {latency[s]['p99']:.0f}" if s in latency
                 else "-" for s in (*STAGE_ORDER, "total")]
        mode = "real time" if case["section"] == "capacity" else "full load"
        lines.append(f"| {case['streams']} streams, {mode} | " + " | ".join(cells) + " |")
    return lines + [""]


def plots(report: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    streams = _pairs(report, "streams")
    if streams:
        fig, ax = plt.subplots(figsize=(6, 4))
        n = [c["streams"] for c, _ in streams]
        ax.plot(n, [c["result"]["fps"] for c, _ in streams], "o-", label="streamer")
        if all(b for _, b in streams):
            ax.plot(n, [b["result"]["fps"] for _, b in streams], "s--", label="baseline (per-frame loop)")
        ax.set(xlabel="streams", ylabel="frames per second, all streams", xscale="log", xticks=n,
               title=f"Throughput vs streams ({streams[0][0]['clip']})")
        ax.set_xticklabels([str(v) for v in n])
        ax.grid(alpha=0.3)
        ax.legend()
        written.append(_save(fig, out / "fps_vs_streams.png"))
    load = [c for c in report["cases"] if c["kind"] == "pipeline" and c["section"] == "capacity"
            and c["result"] is not None] or [c for c, _ in streams]
    if load:
        fig, ax = plt.subplots(figsize=(6, 4))
        load = sorted(load, key=lambda c: c["streams"])
        n = [c["streams"] for c in load]
        for p in ("p50", "p95", "p99"):
            ax.plot(n, [c["result"]["latency_ms"].get("total", {}).get(p) for c in load], "o-", label=p)
        if report.get("capacity"):
            ax.axhline(report["capacity"]["latency_bound_ms"], color="grey", ls=":", label="bound")
        mode = "real-time sources" if load[0]["section"] == "capacity" else "files at full speed"
        ax.set(xlabel="streams", ylabel="decode → annotated output, ms", title=f"Latency vs load ({mode})")
        ax.grid(alpha=0.3)
        ax.legend()
        written.append(_save(fig, out / "latency_vs_load.png"))
    measured = [c for c in report["cases"] if c["kind"] == "pipeline" and c["section"] in ("faces", "streams")
                and c["result"] is not None]
    if measured:
        fig, ax = plt.subplots(figsize=(7, 4))
        labels = [f"{c['faces_per_frame']}f x{c['streams']}" for c in measured]
        bottom = [0.0] * len(measured)
        for stage in STAGE_ORDER[1:]:
            values = [c["result"]["latency_ms"].get(stage, {}).get("mean", 0.0) / c["streams"] for c in measured]
            ax.bar(labels, values, bottom=bottom, label=stage)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set(ylabel="ms per frame (batch time / streams)", title="Time per stage (faces per frame x streams)")
        ax.legend(fontsize=7, ncol=2)
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
        written.append(_save(fig, out / "time_per_stage.png"))
    return written


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write_report(report: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=1))
    (out / "bench.md").write_text(markdown(report))
    return [out / "bench.json", out / "bench.md", *plots(report, out)]
