"""What adding each face's mirror image (``embedder.mirror``) costs and gives, per embedder, in one run.

    .venv/bin/python benchmarks/embedder_mirror.py [--per-person 40]

On ../shared's faces_train/glint24_112 (ArcFace-aligned photos of 24 people, never evaluation faces): ms per
face of the embedder's own call on a batch of them, and its ratio to the single view in the same run (dlib's
network as the product runs it, read from dlib's file and run by ONNX Runtime, and by dlib's own build, the
baseline of the last column); the cosine that 1% and 0.1% of different-person pairs reach (where dlib's fixed
``default_threshold`` comes from) and the share of same-person pairs there. Identity across photos and
occluders is ``streamer eval identity``'s (README, "Identity through occlusion").
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from dlib_choice import CPU, SHARED, glint_crops, pair_stats  # benchmarks/: run as a script, this folder is on the path

from streamer.embed.arcface import ArcFaceConfig, ArcFaceEmbedder
from streamer.embed.dlib_resnet import DlibEmbedderConfig, DlibResnetEmbedder
from streamer.embed.vectors import l2_normalise, mirror_summed


class DlibOwnBuild(DlibResnetEmbedder):
    """The same chips through dlib's own build of the network (``compute_face_descriptor``): the baseline."""

    def __init__(self, config: DlibEmbedderConfig, device):
        import dlib

        from streamer.embed.dlib_resnet import descriptor_file

        self._own = dlib.face_recognition_model_v1(str(descriptor_file()))  # before the warm-up embeds
        super().__init__(config, device)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        chips = self.chips(crops, self.mirror)
        vectors = np.array(self._own.compute_face_descriptor(chips), np.float32).reshape(len(chips), -1)
        return l2_normalise(mirror_summed(vectors, len(crops)) if self.mirror else vectors)


BUILDERS = {
    "dlib ResNet, dlib's own build": lambda mirror: DlibOwnBuild(DlibEmbedderConfig(backend="dlib", mirror=mirror),
                                                                 CPU),
    "dlib ResNet": lambda mirror: DlibResnetEmbedder(DlibEmbedderConfig(backend="dlib", mirror=mirror), CPU),
    "MobileFaceNet": lambda mirror: ArcFaceEmbedder(
        ArcFaceConfig(backend="arcface", model=SHARED / "models" / "mobilefacenet_128d.onnx", mirror=mirror), CPU),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-person", type=int, default=40)
    args = parser.parse_args()
    crops, ids = glint_crops(args.per_person)
    print(f"glint24_112: {len(crops)} faces of {len(set(ids))} people\n")
    print("| embedder | mirror | ms / face | × single view | cosine at FAR 1% (TAR there) | at FAR 0.1% (TAR) "
          "| × dlib's own build |")
    print("|---|---|---|---|---|---|---|")
    baseline = {}
    for name, build in BUILDERS.items():
        single_ms = None
        for mirror in (False, True):
            embedder = build(mirror)
            embedder.embed(crops[:8])  # warm
            started = time.perf_counter()
            vectors = embedder.embed(crops)
            ms = 1000 * (time.perf_counter() - started) / len(crops)
            single_ms = single_ms or ms
            _, genuine, impostor = pair_stats(vectors, ids)
            cells = []
            for far in (0.01, 0.001):
                at = float(np.quantile(impostor, 1 - far))
                cells.append(f"{at:.4f} ({(genuine >= at).mean():.1%})")
            if name.startswith("dlib"):
                baseline.setdefault(mirror, ms)
            speed = f"{baseline[mirror] / ms:.1f}× faster" if name.startswith("dlib") else ""
            print(f"| {name} | {'yes' if mirror else 'no'} | {ms:.2f} | {ms / single_ms:.2f} | {' | '.join(cells)} "
                  f"| {speed} |")


if __name__ == "__main__":
    main()
