"""Does matching embeddings around a population's mean, partly whitened, name occluded faces better, and does
it hold when the population is another one than the probes'?

    .venv/bin/python benchmarks/embedding_normalisation.py --config CFG [--student RUN/student.onnx]
        [--fit NAME=DIR[,DIR...] ...] [--fit-photos 3000] [--cache DIR] [--out out/embedding-normalisation]

The product compares unit embeddings by their cosine. dlib's descriptors share a large common part (different
people score 0.78-0.90) and span about 78 of their 128 dimensions, so a cosine is dominated by what every face
has. Here each embedding is moved to a frame fitted on a population's clean faces (``--fit``: folders of
photos, aligned by the config's detector): its mean taken away, its principal components scaled by
variance^-a (a = 0: centred only; components of no variance weigh as the weakest real one), then unit length.
TAR at FAR 1% and 0.1% on the probes of ``streamer eval identity``'s reduced protocol (``faces_eval``, 2 probes
a person, clean, face masks, sunglasses, hands, aligned by the detector as the stream aligns them), for the
face as seen (or the student's embedding of it: ``--student``, or dlib's shipped one by default) and for
the product's decision, against the plain cosine; and how far the probes' impostor scores reach above the
gallery's own different-person pairs (in their spreads, at 1 in 1,000 and 1 in 10,000 pairs), which is what
the calibrated threshold reckons with.

The probes are never part of a fit; the gallery is only with ``--fit gallery`` (a frame a site could fit on
its own enrolled photos: here 199, one each). Writes normalisation.json and prints a Markdown table;
about 2 minutes on 2 cores with the eval's aligned faces cached (``--cache``, an eval's OUT/cache), more to align them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from engines import Device
from streamer.config import load_config
from streamer.datagen.occluders import OccluderLibrary
from streamer.eval.identity import (
    AlignmentCache,
    IdentitySettings,
    build,
    embed_all,
    gallery_index,
    pairs,
    path_scores,
    probe_vectors,
    verification,
)
from streamer.identify.frame import fit_frame
from streamer.identify.gallery import IMAGE_SUFFIXES, reconstruction_classes
from streamer.stages import Stages

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CONDITIONS = ("clean", "face_mask", "sunglasses", "hand")
POWERS = (0.0, 0.15, 0.25, 0.35)
TRAIN = SHARED / "data" / "faces_train"
DEFAULT_FITS = (f"faces_train={TRAIN / 'glint24_112'},{TRAIN / 'utkface_200'},{TRAIN / 'celebamaskhq_256' / 'images'}",
                f"masked_faces_without_mask={SHARED / 'data' / 'masked_faces' / 'without_mask'}")


def fit_photos(spec: str, cache: AlignmentCache, limit: int, seed: int) -> tuple[str, list[np.ndarray]]:
    name, _, folders = spec.partition("=")
    if not folders:
        raise SystemExit(f"--fit: expected NAME=DIR[,DIR...], got {spec!r}")
    paths = [p for folder in folders.split(",") for p in sorted(Path(folder).rglob("*"))
             if p.suffix.lower() in IMAGE_SUFFIXES]
    if not paths:
        raise SystemExit(f"--fit: no photos in {folders}")
    chosen = [paths[i] for i in np.random.default_rng(seed).permutation(len(paths))[:limit]]
    return name, [found[0] for found in map(cache.align, chosen) if found is not None]


def tail_z(scores: np.ndarray, probes, enrolled: list[str], gallery: np.ndarray) -> dict[str, float]:
    """How far the probes' impostor scores reach, as the calibration measures it: at 1 in 1,000 and 1 in
    10,000 impostor pairs, in spreads above the mean of the gallery's own different-person pairs (a normal
    reaches 3.09 and 3.72; a frame in which the tail is normal could keep the normal's z)."""
    _, _, impostor = pairs(scores, probes, enrolled)
    between = (gallery @ gallery.T)[np.triu_indices(len(gallery), 1)]
    ordered = np.sort(impostor)[::-1]
    return {f"z@{rate:g}": round(float((ordered[int(rate * len(ordered))] - between.mean()) / between.std()), 3)
            for rate in (1e-3, 1e-4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/dev-shared-models.yaml")
    parser.add_argument("--student", help="the embedder's student (as `streamer eval identity --student`)")
    parser.add_argument("--faces", default=str(SHARED / "data" / "faces_eval" / "celeba_identity_160"))
    parser.add_argument("--fit", action="append", help="NAME=DIR[,DIR...]: a population to fit a frame on, or "
                        "'gallery': the enrolled photos themselves (default: faces_train's three sets, and "
                        "masked_faces/without_mask)")
    parser.add_argument("--fit-photos", type=int, default=3000, help="photos drawn from each population at most")
    parser.add_argument("--cache", help="aligned faces kept between runs (default OUT/cache)")
    parser.add_argument("--out", default="out/embedding-normalisation")
    args = parser.parse_args()
    started = time.perf_counter()
    say = lambda line: print(f"[{time.perf_counter() - started:5.0f} s] {line}", file=sys.stderr, flush=True)  # noqa: E731

    config = load_config(args.config)
    if args.student:
        config = config.model_copy(update={"embedder": config.embedder.model_copy(
            update={"student": Path(args.student)})})
    stages = Stages.build(config, Device("cpu"))
    embedder = stages.embedder
    out = Path(args.out)
    cache_dir = Path(args.cache) if args.cache else out / "cache"
    settings = IdentitySettings(size=config.pipeline.crop_size, probes_per_person=2, gallery_sizes=(100,),
                                conditions=CONDITIONS, min_occluded_fraction=config.pipeline.min_occluded_fraction)
    data = build(Path(args.faces), [], stages, OccluderLibrary(SHARED / "data" / "occluders"), settings,
                 progress=say, cache_dir=cache_dir)
    cache = AlignmentCache(cache_dir, stages.detector, settings.size)
    populations = {}
    gallery = embed_all(embedder, data.gallery)
    for spec in args.fit or DEFAULT_FITS:
        if spec == "gallery":  # what a site has: its own enrolled photos
            populations[spec] = gallery
            continue
        name, crops = fit_photos(spec, cache, args.fit_photos, 0)
        populations[name] = embed_all(embedder, np.stack(crops))
        say(f"fit {name}: {len(crops)} faces")
    cache.save()

    policy = reconstruction_classes(config.gallery.reconstruction_for, config.embedder.backend,
                                    embedder.student is not None)
    camera = "student" if embedder.student is not None else "visible"
    vectors = {p.condition: probe_vectors(embedder, p, None if policy is None else list(policy)) for p in data.probes}
    if any(v.weights is not None for v in vectors.values()):
        raise SystemExit(f"--config: {embedder.description} compares the cells the camera saw: a frame does not apply")
    moves = {"plain cosine": lambda v: v}
    for name, population in populations.items():  # the product's own frame (streamer/identify/frame.py) at each power
        for power in POWERS:
            moves[f"{name}, variance^-{power:g}"] = fit_frame(population, power).apply
    rows = {}
    for label, move in moves.items():
        index = gallery_index(embedder.model_id, move(gallery))
        for probes in data.probes:
            v = vectors[probes.condition]
            moved = replace(v, visible=move(v.visible), reconstruction=move(v.reconstruction),
                            student=None if v.student is None else move(v.student))
            scores = path_scores(index, moved)
            for path in (camera, "fused"):
                figures = verification(scores[path], probes, data.enrolled)
                rows.setdefault(f"{label} | {path}", {})[probes.condition] = {
                    "tar@far0.01": figures["tar@far0.01"], "tar@far0.001": figures["tar@far0.001"],
                    **tail_z(scores[path], probes, data.enrolled, move(gallery))}
        say(f"scored {label}")
    report = {"embedder": embedder.description, "enrolled": len(gallery), "fits": list(populations), "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "normalisation.json").write_text(json.dumps(report, indent=1))
    print(f"\n{embedder.description}; TAR at FAR 1% (0.1%), {len(gallery)} enrolled; impostors' z at 1e-3 / 1e-4\n")
    print("| matched in | path | " + " | ".join(CONDITIONS) + " |\n|---|---|" + "---|" * len(CONDITIONS))
    for key, row in rows.items():
        label, path = key.split(" | ")
        print(f"| {label} | {path} | " + " | ".join(
            f"{row[c]['tar@far0.01']:.3f} ({row[c]['tar@far0.001']:.3f}); z {row[c]['z@0.001']:.2f} / "
            f"{row[c]['z@0.0001']:.2f}" for c in CONDITIONS) + " |")
    print(f"\nwrote {out / 'normalisation.json'} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
