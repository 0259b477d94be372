"""Identity through real glasses: do rebuilt eyes name people better than the face as the camera saw it?

    .venv/bin/python benchmarks/glasses_identity.py [--config configs/dev-shared-models.yaml] [--cache DIR]

Real photos of people no model here was trained on (../shared/data/faces_eval/celeba_identity_160), wearing the
glasses they really wore, not pasted ones. Gallery: per person, the first photo on which the occluder model finds
nothing at its floor. Probes: their other photos that the stream would inpaint for glasses alone (the config's
occluder model and gate, glasses named by their lenses, but no class seen through, so that clear glasses are
rebuilt too and can be judged). Per embedder (the config's; dlib's ResNet, which nothing here was trained
against): rank-1 identification among every gallery person on the face as seen, on the reconstruction alone, and
on the stream's fused score (the higher of the two), per class the stage names; and TAR at FAR 1%, the
impostors being each probe against every other gallery person.

``--cache``: where aligned photos are kept (``streamer eval identity``'s cache folder serves; default
out/glasses-identity). About 3 minutes on 2 cores with the photos aligned, 3 more to align them.

Measured 2026-12-03 (SCRFD-2.5GF, occluder v2 with its gate, the shipped inpainter; MobileFaceNet mirrored):
README, *Measured on this machine*, "identity through real glasses".
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np

from engines import Device
from streamer.config import load_config
from streamer.embed import build_embedder
from streamer.embed.dlib_resnet import DlibEmbedderConfig
from streamer.eval.identity import AlignmentCache, align_photos, embed_all, list_people
from streamer.inpaint import inpaint_batched
from streamer.records import AlignedCrop
from streamer.stages import Stages

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FACES = SHARED / "data" / "faces_eval" / "celeba_identity_160"
GLASSES = {"sunglasses", "eyeglasses"}
BATCH = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/dev-shared-models.yaml")
    parser.add_argument("--cache", default="out/glasses-identity")
    args = parser.parse_args()
    config = load_config(args.config)
    # Nothing seen through: every glasses the gate passes is rebuilt, so that the rebuilt clear ones are judged too.
    config = config.model_copy(update={"occlusion": config.occlusion.model_copy(update={"see_through": []})})
    cpu = Device("cpu")
    stages = Stages.build(config, cpu)
    cache = AlignmentCache(Path(args.cache), stages.detector, config.pipeline.crop_size)
    photos = [photo for person, paths in list_people(FACES).items() for photo in align_photos(paths, cache, person)[0]]
    cache.save()
    identity = np.eye(2, 3, dtype=np.float32)  # the crops are aligned already
    found, occlusions = [], []
    for start in range(0, len(photos), BATCH):
        crops = [AlignedCrop(p.crop, identity, p.outside) for p in photos[start:start + BATCH]]
        instances = stages.segmenter.instances(crops)
        found += [bool(i) for i in instances]
        occlusions += [stages.segmenter.gate.occlusion(i, crops[0].image.shape[0]) for i in instances]
    gallery = {}
    for k, photo in enumerate(photos):
        if not found[k]:
            gallery.setdefault(photo.person, k)
    probes = [k for k, photo in enumerate(photos)
              if photo.person in gallery and gallery[photo.person] != k and occlusions[k].classes
              and set(occlusions[k].classes) <= GLASSES
              and occlusions[k].fraction >= config.pipeline.min_occluded_fraction]
    named = [" + ".join(occlusions[k].classes) for k in probes]
    counts = ", ".join(f"{n} {c}" for n, c in sorted(collections.Counter(named).items()))
    print(f"{len(photos)} photos of {len(gallery)} people with a gallery photo; {len(probes)} probes the stream "
          f"inpaints for glasses alone: {counts}")
    images = np.stack([photos[k].crop for k in probes])
    rebuilt = inpaint_batched(stages.inpainter, images, np.stack([occlusions[k].mask for k in probes]))
    people = list(gallery)
    truth = np.array([people.index(photos[k].person) for k in probes])
    gallery_images = np.stack([photos[gallery[p]].crop for p in people])
    own = Path(config.embedder.model).stem if config.embedder.backend == "arcface" else config.embedder.backend
    dlib = build_embedder(DlibEmbedderConfig(backend="dlib", mirror=False, student=None), cpu)  # as measured
    embedders = {own: stages.embedder, "dlib": dlib}
    print("\nrank-1 identification; TAR at FAR 1% (the probes against every other gallery person)")
    print("\n| embedder | glasses named | probes | as seen | reconstruction alone | fused (the higher) |")
    print("|---|---|---|---|---|---|")
    for name, embedder in embedders.items():
        enrolled = embed_all(embedder, gallery_images)
        seen, alone = embed_all(embedder, images) @ enrolled.T, embed_all(embedder, rebuilt) @ enrolled.T
        fused = np.maximum(seen, alone)
        for label in [*sorted(set(named)), "all"]:
            rows = np.array([label in ("all", n) for n in named])
            figures = [f"{rank1(scores[rows], truth[rows]):.3f}; {tar_at_far(scores[rows], truth[rows], 0.01):.3f}"
                       for scores in (seen, alone, fused)]
            print(f"| {name} | {label} | {rows.sum()} | " + " | ".join(figures) + " |")


def rank1(scores: np.ndarray, truth: np.ndarray) -> float:
    return float((scores.argmax(1) == truth).mean())


def tar_at_far(scores: np.ndarray, truth: np.ndarray, far: float) -> float:
    """The share of probes whose own person scores above what ``far`` of the other people's scores reach."""
    own = np.zeros(scores.shape, bool)
    own[np.arange(len(truth)), truth] = True
    return float((scores[own] > np.quantile(scores[~own], 1 - far)).mean())


if __name__ == "__main__":
    main()
