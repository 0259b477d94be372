"""How far a stranger's score reaches, for probes as a camera sees them: the impostor tail each embedder ships with.

    .venv/bin/python benchmarks/impostor_tail.py [--config configs/dev-shared-models.yaml] [--gallery 2000]
        [--probes 1000] [--out out/impostor-tail] [--only dlib|mobilefacenet] [--dlib-mirror]
        [--dlib-student ONNX] [--mobilefacenet-student ONNX] [--faces DIR] [--dlib-alike 0.95]
        [--frame] [--sizes 200 2000]

The gallery's own clean photos say where an embedder puts different people (the mean and spread of their
cosines), but not how far a stranger's degraded or occluded face reaches against them: the product's
threshold comes from that far tail (``streamer/identify/calibration.py``). A normal fitted to the clean pairs
gets it wrong both ways: dlib's probes never reach what the normal expects (nobody is named at 100 people or
more), MobileFaceNet's reach further (1.3-2.6% of strangers named at 1,000 against a 1% target).

Measured here on training data, never ``faces_eval``: UTKFace adults (16 and older, by the file name), which
are many people of every skin tone, photographed once each mostly. Split by a fixed shuffle into a gallery
(one clean photo per "person") and probes: other people's photos through the camera faults and occluders of
the data engine, then the product's own segmenter, inpainter and fused decision, as ``streamer eval
identity`` does (``--faces DIR``: every photo of DIR instead, one person each, e.g. CelebAMask-HQ for a
population like the evaluation's). Every probe-gallery pair is an impostor pair, except where the set holds
the same person twice: pairs the OTHER embedder finds alike (MobileFaceNet >= 0.5, dlib >= 0.95) are left out
of an embedder's tail, so neither embedder decides what counts against itself.

With ``--frame``, each gallery is compared in its own frame, as the product compares dlib's from 50 people on
(``gallery.frame``, identify/frame.py), at the exponent measured for the backend: the tail of
``MEASURED_FRAME_TAILS``. A frame is fitted on the gallery it scores, so its own pairs stand a little closer
than a stranger's face does to them, the more so the smaller the gallery: ``--sizes`` measures galleries of the
first N people of the gallery (default: all of it), and the table shipped is the highest at each rate.

For each embedder and condition: the per-comparison false-accept rate p -> z, where the score a stranger
reaches with probability p is the gallery's impostor mean + z x its spread. Measured where at least 10 pairs
are above, then carried on in normal quantiles. The table shipped for each embedder
(``MEASURED_TAILS``) is the highest z of the conditions at each p: it holds the rate for the hardest one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from occlusion_by_group import UTKFACE, labelled_photos  # benchmarks/: run as a script, this folder is on the path

from engines import Device
from streamer.config import load_config, parse_config
from streamer.datagen.occluders import OccluderLibrary
from streamer.embed import build_embedder
from streamer.embed.arcface import ArcFaceConfig
from streamer.eval.identity import (
    AlignmentCache,
    IdentitySettings,
    Photo,
    compose_probes,
    embed_all,
    gallery_index,
    path_scores,
    probe_vectors,
)
from streamer.identify.calibration import TAIL_RATES
from streamer.identify.frame import DEFAULT_EXPONENT, MEASURED_EXPONENT, FrameSetting
from streamer.identify.frame import MIN_PEOPLE as MIN_FRAME_PEOPLE
from streamer.identify.gallery import IMAGE_SUFFIXES, reconstruction_classes
from streamer.stages import Stages

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MOBILEFACENET = SHARED / "models" / "mobilefacenet_128d.onnx"
CONDITIONS = ("clean", "face_mask", "sunglasses")
ALIKE = {"dlib": 0.95, "mobilefacenet": 0.5}  # the other embedder's "maybe the same person"
LEAST_ABOVE = 10  # pairs above a quantile for it to be read off, not carried on


def tail_z(scores: np.ndarray, mean: float, std: float, rates=TAIL_RATES) -> list[float]:
    """z at each per-comparison rate: read off where LEAST_ABOVE pairs are above, else carried on from the last
    two read, in normal quantiles."""
    normal = statistics.NormalDist()
    z = (np.sort(scores)[::-1] - mean) / std
    read = [(normal.inv_cdf(1 - p), float(z[int(p * len(z)) - 1])) for p in rates if p * len(z) >= LEAST_ABOVE]
    out = []
    for p in rates:
        q = normal.inv_cdf(1 - p)
        known = [v for k, v in read if k == q]
        if known:
            out.append(known[0])
        else:
            (q0, z0), (q1, z1) = read[-2], read[-1]
            out.append(z1 + (z1 - z0) / (q1 - q0) * (q - q1))
    return [round(v, 3) for v in out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/dev-shared-models.yaml")
    parser.add_argument("--gallery", type=int, default=2000)
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--out", default="out/impostor-tail")
    parser.add_argument("--only", choices=("dlib", "mobilefacenet"),
                        help="measure one embedder's tail (the other still embeds the clean photos, to leave out pairs "
                        "it finds alike)")
    parser.add_argument("--dlib-mirror", action="store_true",
                        help="dlib with each face's mirror image (embedder.mirror, dlib's default since 2026-12-05; "
                        "without it, single view); MobileFaceNet always has it, its default")
    parser.add_argument("--dlib-student", metavar="ONNX",
                        help="dlib's probes described by this student of it ('make train-embedder-dlib-cpu')")
    parser.add_argument("--mobilefacenet-student", metavar="ONNX",
                        help="MobileFaceNet's probes described by this student of it ('make train-embedder-cpu')")
    parser.add_argument("--dlib-alike", type=float, default=ALIKE["dlib"],
                        help="dlib's cosine from which a pair is left out of MobileFaceNet's tail as maybe the same "
                        "person (0.916: dlib's own fixed threshold, single view)")
    parser.add_argument("--faces", help="a folder of photos of different people (mostly) in place of UTKFace's adults")
    parser.add_argument("--frame", action="store_true", help="compare in each gallery's own frame (gallery.frame)")
    parser.add_argument("--sizes", type=int, nargs="+", help="gallery sizes measured: the first N of the gallery "
                        "(default: all of it)")
    args = parser.parse_args()
    sizes = sorted(set(args.sizes or [args.gallery]))
    least = MIN_FRAME_PEOPLE if args.frame else 20  # what the calibration needs; a frame, what it needs
    if sizes[0] < least or sizes[-1] > args.gallery:
        raise SystemExit(f"--sizes: each between {least} and --gallery ({args.gallery})")
    config = load_config(args.config)
    device = Device("cpu")
    stages = Stages.build(config, device)
    out = Path(args.out)
    started = time.perf_counter()
    say = lambda line: print(f"[{time.perf_counter() - started:5.0f} s] {line}", file=sys.stderr, flush=True)  # noqa: E731

    if args.faces:
        adults = sorted(p for p in Path(args.faces).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    else:
        adults = sorted(p for group in labelled_photos(UTKFACE).values() for p, age in group if age >= 16)
    order = np.random.default_rng(0).permutation(len(adults))
    cache = AlignmentCache(out / "cache", stages.detector, config.pipeline.crop_size)
    photos = []
    for k in order:
        found = cache.align(adults[k])
        if found is not None:
            photos.append(Photo(adults[k].name, adults[k], *found))
        if len(photos) == args.gallery + args.probes:
            break
    cache.save()
    gallery, probe_photos = photos[:args.gallery], photos[args.gallery:]
    say(f"{len(gallery)} gallery faces, {len(probe_photos)} probe faces "
        f"({args.faces or 'UTKFace, 16 and older'})")

    settings = IdentitySettings(size=config.pipeline.crop_size, conditions=CONDITIONS,
                                min_occluded_fraction=config.pipeline.min_occluded_fraction)
    library = OccluderLibrary(SHARED / "data" / "occluders")
    probes = [compose_probes(c, probe_photos, {p.person for p in probe_photos}, stages, library, settings)
              for c in CONDITIONS]
    say("probes through the segmenter and inpainter")

    dlib = {"backend": "dlib", "mirror": args.dlib_mirror, "student": args.dlib_student}  # None: dlib alone
    embedders = {"dlib": (build_embedder(parse_config({"embedder": dlib}).embedder, device), "dlib"),
                 "mobilefacenet": (build_embedder(ArcFaceConfig(backend="arcface", model=MOBILEFACENET,
                                                                student=args.mobilefacenet_student), device),
                                   "arcface")}
    clean = {}
    for name, (embedder, _) in embedders.items():
        clean[name] = (embed_all(embedder, np.stack([p.crop for p in gallery])),
                       embed_all(embedder, np.stack([p.crop for p in probe_photos])))
        say(f"{name}: clean photos embedded")
    report = {"rates": list(TAIL_RATES), "gallery": len(gallery), "probes": len(probe_photos), "embedders": {}}
    for name, (embedder, backend) in embedders.items():
        if args.only and name != args.only:
            continue
        other = next(n for n in embedders if n != name)
        alike_from = args.dlib_alike if other == "dlib" else ALIKE[other]
        alike = clean[other][1] @ clean[other][0].T >= alike_from  # (probes, gallery): maybe the same person
        policy = reconstruction_classes("auto", backend, embedder.student is not None)
        frame = FrameSetting(MEASURED_EXPONENT.get(backend, DEFAULT_EXPONENT)) if args.frame else None
        tails, models = {}, {}
        vectors = {c.condition: probe_vectors(embedder, c, None if policy is None else list(policy)) for c in probes}
        for size in sizes:
            index = gallery_index(embedder.model_id, clean[name][0][:size], frame=frame)
            model = models[size] = index.impostors()
            for condition in probes:
                scores = path_scores(index, vectors[condition.condition])["fused"][~alike[:, :size]]
                scores = scores[np.isfinite(scores)]  # a probe whose face the detector missed is compared with nobody
                key = condition.condition if len(sizes) == 1 else f"{condition.condition}, {size} people"
                tails[key] = tail_z(scores, model.mean, model.std)
                say(f"{name} {key}: z {tails[key]}")
        shipped = [max(t[i] for t in tails.values()) for i in range(len(TAIL_RATES))]
        report["embedders"][name] = {"model_id": embedder.model_id, "frame": frame.exponent if frame else None,
                                     "gallery_mean": {size: round(m.mean, 4) for size, m in models.items()},
                                     "gallery_std": {size: round(m.std, 4) for size, m in models.items()},
                                     "pairs_left_out": int(alike.sum()), "left_out_from": alike_from,
                                     "pairs": int((~alike).sum()), "z": tails, "shipped": shipped}
    out.mkdir(parents=True, exist_ok=True)
    (out / "impostor_tail.json").write_text(json.dumps(report, indent=1))
    normal = [round(statistics.NormalDist().inv_cdf(1 - p), 3) for p in TAIL_RATES]
    print("\n| embedder | condition | " + " | ".join(f"z at {p:g}" for p in TAIL_RATES) + " |")
    print("|---|---|" + "---|" * len(TAIL_RATES))
    print("| (normal) | | " + " | ".join(map(str, normal)) + " |")
    for name, figures in report["embedders"].items():
        for condition, z in {**figures["z"], "shipped (highest)": figures["shipped"]}.items():
            print(f"| {name} | {condition} | " + " | ".join(map(str, z)) + " |")
    print(f"\nwrote {out / 'impostor_tail.json'} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
