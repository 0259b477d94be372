"""Which identity decision names more people right: the product's, against the alternatives one could ship.

    .venv/bin/python benchmarks/identity_decision_rules.py [--config configs/dev-shared-models.yaml]
        [--student RUN/student.onnx] [--faces DIR] [--size 1000] [--out out/decision-rules]

The product names a face by its best score over the gallery, on the face as the camera saw it (embedded by
the embedder's student where there is one; the reconstruction's score as well for the classes
``gallery.reconstruction_for`` names), against a threshold raised with the gallery's size. Measured here on
the probes of ``streamer eval identity`` (``faces_eval``: across photos, strangers never enrolled, the
product's own detector, segmenter and inpainter; its reduced protocol: clean, face masks, sunglasses and
hands, 2 probes a person), against:

- weighted mixes of the paths' scores (the student's with the face as seen, or with the reconstruction) and
  each identity's better score of the student and the reconstruction, by TAR at FAR 1%;
- test-time shifts: the probe embedded at 2 px to each side as well, the embeddings added;
- in the open set with ``--size`` people enrolled (the eval's distractors beyond its 199), rules other than
  the best score: its margin over the second-best identity, the best score normalised by the probe's own
  scores against the gallery (mean and spread of all but the best), and the best score plus half the margin.
  Each rule's threshold is set where the strangers' probes (all conditions together) are named at a given
  rate, and the enrolled probes named right there are compared: what each rule could do at best, on these
  strangers, not a calibration a product could ship.

Writes decision_rules.json and prints Markdown tables. About 6 minutes on 2 cores with the eval's aligned
faces cached (``--cache``, the eval's OUT/cache).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from engines import Device
from streamer.config import load_config
from streamer.datagen.occluders import OccluderLibrary
from streamer.embed.vectors import l2_normalise
from streamer.eval.identity import (
    IdentitySettings,
    build,
    embed_all,
    gallery_index,
    path_scores,
    probe_vectors,
    verification,
)
from streamer.identify.gallery import reconstruction_classes
from streamer.stages import Stages

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CONDITIONS = ("clean", "face_mask", "sunglasses", "hand")
MIXES = (0.9, 0.8, 0.7)  # the student's (or the face as seen's) weight in a mix of two paths' scores
SHIFT_PX = 2
STRANGER_RATES = (0.01, 0.005)


def shifted(images: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """(n, S, S, 3) crops moved by (dx, dy) px, the border repeated."""
    moved = np.float32([[1, 0, dx], [0, 1, dy]])
    return np.stack([cv2.warpAffine(image, moved, image.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
                     for image in images])


def open_set_features(scores: np.ndarray, own: np.ndarray) -> dict[str, np.ndarray]:
    """Per probe, from its (n, N) scores against the gallery (-inf where its face was not found): the values
    each rule thresholds, and whether its best identity is its own."""
    found = np.isfinite(scores).all(axis=1)
    ordered = -np.sort(-np.where(np.isfinite(scores), scores, 0.0), axis=1)
    best, second, rest = ordered[:, 0], ordered[:, 1], ordered[:, 1:]
    margin = best - second
    values = {"best score": best, "margin over the second": margin,
              "best normalised by the probe's scores": (best - rest.mean(axis=1)) / np.maximum(rest.std(axis=1), 1e-6),
              "best + half the margin": best + 0.5 * margin}
    values = {rule: np.where(found, v, -np.inf) for rule, v in values.items()}
    right = found & (scores.argmax(axis=1) == own)
    return {"values": values, "right": right}


def open_set(by_condition: dict[str, tuple[np.ndarray, np.ndarray]], rate: float) -> dict:
    """Named right per condition and rule, each rule's threshold where the strangers of every condition are
    named at ``rate`` (at most)."""
    features = {c: open_set_features(scores, own) for c, (scores, own) in by_condition.items()}
    rules = next(iter(features.values()))["values"]
    out = {}
    for rule in rules:
        strangers = np.concatenate([features[c]["values"][rule][own < 0] for c, (_, own) in by_condition.items()])
        ordered = np.sort(strangers[np.isfinite(strangers)])[::-1]
        allowed = int(rate * len(strangers))  # strangers that may be named
        # Just above the first stranger not allowed (in float64: float32 scores would absorb the step).
        threshold = np.nextafter(float(ordered[allowed]), np.inf) if allowed < len(ordered) else -np.inf
        row = {"threshold": round(float(threshold), 4),
               "strangers_named": round(float((strangers >= threshold).mean()), 4)}
        for condition, (_, own) in by_condition.items():
            named, right, known = (features[condition]["values"][rule] >= threshold,
                                   features[condition]["right"], own >= 0)
            row[condition] = {"right": round(float((named & right)[known].mean()), 4),
                              "wrong": round(float((named & ~right)[known].mean()), 4)}
        out[rule] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/dev-shared-models.yaml")
    parser.add_argument("--student", help="the embedder's student (as `streamer eval identity --student`)")
    parser.add_argument("--faces", default=str(SHARED / "data" / "faces_eval" / "celeba_identity_160"))
    parser.add_argument("--distractors", nargs="*", default=[str(SHARED / "data" / "faces_train" / "utkface_200"),
                                                              str(SHARED / "data" / "faces_train" / "celebamaskhq_256"
                                                                  / "images")])
    parser.add_argument("--size", type=int, default=1000, help="people enrolled for the open set")
    parser.add_argument("--cache", help="aligned faces kept between runs (default OUT/cache)")
    parser.add_argument("--out", default="out/decision-rules")
    args = parser.parse_args()
    started = time.perf_counter()
    say = lambda line: print(f"[{time.perf_counter() - started:5.0f} s] {line}", file=sys.stderr, flush=True)  # noqa: E731

    config = load_config(args.config)
    if args.student:
        config = config.model_copy(update={"embedder": config.embedder.model_copy(
            update={"student": Path(args.student)})})
    device = Device("cpu")
    stages = Stages.build(config, device)
    embedder = stages.embedder  # with its student, where one is given
    out = Path(args.out)
    settings = IdentitySettings(size=config.pipeline.crop_size, probes_per_person=2, gallery_sizes=(args.size,),
                                conditions=CONDITIONS, min_occluded_fraction=config.pipeline.min_occluded_fraction)
    data = build(Path(args.faces), [Path(d) for d in args.distractors], stages,
                 OccluderLibrary(SHARED / "data" / "occluders"), settings, progress=say,
                 cache_dir=Path(args.cache) if args.cache else out / "cache")
    gallery = embed_all(embedder, data.gallery)
    others = embed_all(embedder, data.distractors[:max(args.size - len(gallery), 0)])
    enrolled = gallery_index(embedder.model_id, gallery)
    everyone = gallery_index(embedder.model_id, np.vstack([gallery, others]))
    policy = reconstruction_classes(config.gallery.reconstruction_for, config.embedder.backend,
                                    embedder.student is not None)
    camera_path = "student" if embedder.student is not None else "visible"
    camera_embedder = embedder.student if embedder.student is not None else embedder
    say(f"{embedder.description}: {len(gallery)} enrolled, {len(gallery) + len(others)} in the open set")

    column = {person: k for k, person in enumerate(data.enrolled)}
    verify, by_condition = {}, {}
    for probes in data.probes:
        vectors = probe_vectors(embedder, probes, None if policy is None else list(policy))
        paths = path_scores(enrolled, vectors)
        camera, seen, rebuilt = paths[camera_path], paths["visible"], paths["reconstruction"]
        views = [embed_all(camera_embedder, shifted(probes.images, dx, dy))
                 for dx, dy in ((SHIFT_PX, 0), (-SHIFT_PX, 0), (0, SHIFT_PX), (0, -SHIFT_PX))]
        own_view = vectors.student if embedder.student is not None else vectors.visible
        shifted_scores = enrolled.scores(l2_normalise(own_view + sum(views)))[1]
        if vectors.detected is not None:
            shifted_scores = np.where(vectors.detected[:, None], shifted_scores, -np.inf)
        candidates = {"the product's decision": paths["fused"], camera_path: camera, "visible": seen,
                      "reconstruction": rebuilt,
                      f"better of {camera_path} and reconstruction": np.maximum(camera, rebuilt),
                      f"{camera_path} + shifted views": shifted_scores}
        if camera_path != "visible":
            candidates |= {f"{w:g} {camera_path} + {1 - w:.1g} visible": w * camera + (1 - w) * seen for w in MIXES}
        candidates |= {f"{w:g} {camera_path} + {1 - w:.1g} reconstruction": w * camera + (1 - w) * rebuilt
                       for w in MIXES}
        verify[probes.condition] = {name: verification(s, probes, data.enrolled)["tar@far0.01"]
                                    for name, s in candidates.items()}
        against = path_scores(everyone, vectors)["fused"]
        own = np.array([column.get(p, -1) for p in probes.people])
        by_condition[probes.condition] = (against, own)
        say(f"{probes.condition}: scored")
    report = {"embedder": embedder.description, "model_id": embedder.model_id, "enrolled": len(gallery),
              "open_set_size": len(gallery) + len(others), "tar_at_far_1pct": verify,
              "open_set": {str(rate): open_set(by_condition, rate) for rate in STRANGER_RATES}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "decision_rules.json").write_text(json.dumps(report, indent=1))

    conditions = list(verify)
    print(f"\n{embedder.description}\n\nTAR at FAR 1%, {len(gallery)} enrolled\n")
    print("| scores | " + " | ".join(conditions) + " |\n|---|" + "---|" * len(conditions))
    for name in verify[conditions[0]]:
        print(f"| {name} | " + " | ".join(f"{verify[c][name]:.3f}" for c in conditions) + " |")
    for rate, rules in report["open_set"].items():
        print(f"\nOpen set, {report['open_set_size']} people: each rule's threshold where at most "
              f"{float(rate):.1%} of strangers are named; enrolled named right (named as someone else)\n")
        print("| rule | strangers named | " + " | ".join(conditions) + " |\n|---|---|" + "---|" * len(conditions))
        for rule, row in rules.items():
            print(f"| {rule} | {row['strangers_named']:.1%} | " + " | ".join(
                f"{row[c]['right']:.1%} ({row[c]['wrong']:.1%})" for c in conditions) + " |")
    print(f"\nwrote {out / 'decision_rules.json'} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
