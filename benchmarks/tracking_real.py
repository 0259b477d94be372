"""Face tracks on real footage: ID switches and fragmentation, greedy IoU vs ByteTrack vs ByteTrack
helped by embeddings.

    .venv/bin/python benchmarks/tracking_real.py [--video-dir ../shared/data/video]

Faces: SCRFD-2.5GF on every frame, MobileFaceNet on each aligned face. The clips carry no
identity labels, so the ground truth is made offline with hindsight: all of a clip's faces
clustered by embedding (average linkage, cosine >= 0.4) and faces in one frame kept apart; it is
a pseudo ground truth, not a human annotation. Fragmentation: for each person, the number of
distinct track IDs that cover them, minus one. ID switches: for each track, the number of distinct
people it covered, minus one. Each clip is run as it is, and with detections knocked out (each
face missed with probability 0.2, and in every 37 frames all faces gone for the last 12, longer than
a track survives unseen: the faces turn away or pass behind something).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from engines import select_device
from streamer.align import align_face
from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
from streamer.embed.arcface import ArcFaceConfig, ArcFaceEmbedder
from streamer.identify.gallery import GalleryConfig, GalleryIndex
from streamer.identify.track_identity import IdentityConfig, IdentityResolver
from streamer.records import Face, FrameResult, Occlusion, VideoFrame
from streamer.store.gallery import ModelVectors
from streamer.track.events import TrackEvents
from streamer.track.iou import iou_matrix

ROOT = Path(__file__).resolve().parents[1]
MAX_MISSES = 10


def faces_of(path: Path, detector, embedder) -> list[list[Face]]:
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="bgr24")
            found = detector.detect(image)
            faces = [Face(b, float(s), lm) for b, s, lm in zip(found.boxes, found.scores, found.landmarks)]
            for face in faces:
                face.crop = align_face(image, face.landmarks, 112)
                face.occlusion = Occlusion(np.zeros((112, 112), bool), (), 0.0)
            if faces:
                for face, vector in zip(faces, embedder.embed(np.stack([f.crop.image for f in faces]))):
                    face.embedding = vector
            frames.append(faces)
    return frames


def pseudo_truth(frames: list[list[Face]]) -> list[list[int]]:
    flat = [(t, f) for t, faces in enumerate(frames) for f in faces]
    if len(flat) < 2:
        return [[0] * len(faces) for faces in frames]
    vectors = np.stack([f.embedding for _, f in flat])
    distance = 1 - vectors @ vectors.T
    frame_of = np.array([t for t, _ in flat])
    distance[frame_of[:, None] == frame_of[None, :]] = 2.0  # one frame, two faces: two people
    np.fill_diagonal(distance, 0)
    condensed = distance[np.triu_indices(len(flat), 1)]
    labels = fcluster(linkage(condensed, "average"), t=0.6, criterion="distance")
    out, k = [], 0
    for faces in frames:
        out.append(list(labels[k : k + len(faces)]))
        k += len(faces)
    return out


def knock_out(frames, seed=0):
    rng = np.random.default_rng(seed)
    return [[] if 25 <= t % 37 < 37 else [f for f in faces if rng.random() > 0.2] for t, faces in enumerate(frames)]


class GreedyIou:
    """The tracker streamer had before: greedy IoU >= 0.3, no motion model."""

    def __init__(self):
        self.tracks, self.next_id = {}, 1

    def ids(self, faces: list[Face]) -> list[int]:
        boxes = np.stack([f.box for f in faces]) if faces else np.zeros((0, 4))
        assigned, used = [None] * len(faces), set()
        ids = list(self.tracks)
        if ids and len(faces):
            iou = iou_matrix(boxes, np.stack([self.tracks[i][0] for i in ids]))
            for flat in np.argsort(-iou, axis=None):
                d, t = np.unravel_index(flat, iou.shape)
                if iou[d, t] < 0.3:
                    break
                if assigned[d] is None and ids[t] not in used:
                    assigned[d] = ids[t]
                    used.add(ids[t])
        for d in range(len(faces)):
            if assigned[d] is None:
                assigned[d], self.next_id = self.next_id, self.next_id + 1
            self.tracks[assigned[d]] = (boxes[d], 0)
        for i in ids:
            if i not in assigned:
                box, misses = self.tracks[i]
                if misses + 1 > MAX_MISSES:
                    del self.tracks[i]
                else:
                    self.tracks[i] = (box, misses + 1)
        return assigned


def track_ids(frames, method: str, model_id: str) -> list[list[int | None]]:
    if method == "greedy IoU":
        tracker = GreedyIou()
        return [tracker.ids(faces) for faces in frames]
    empty = GalleryIndex(model_id, ModelVectors(np.zeros(0, np.int64), np.zeros(0, np.int8),
                                                np.zeros((0, 128), np.float32), {}, {}))
    resolver = IdentityResolver(empty, GalleryConfig(), IdentityConfig(pseudo_identities=False), 0.35, None)
    events = TrackEvents("clip", resolver, min_hits=1, max_misses=MAX_MISSES,
                         reattach_similarity=0.5 if method == "ByteTrack + embeddings" else None)
    out = []
    for t, faces in enumerate(frames):
        for face in faces:
            face.track_id = -1
        events.update(FrameResult(VideoFrame("clip", t, np.zeros((1, 1, 3), np.uint8), None, 0.0, 0.0), faces))
        out.append([f.track_id if f.track_id >= 0 else None for f in faces])
    return out


def scores(truth, ids) -> tuple[int, int, int]:
    people_tracks, track_people = {}, {}
    for frame_truth, frame_ids in zip(truth, ids):
        for person, track in zip(frame_truth, frame_ids):
            if track is None:
                continue
            people_tracks.setdefault(person, set()).add(track)
            track_people.setdefault(track, set()).add(person)
    fragmentation = sum(len(t) - 1 for t in people_tracks.values())
    switches = sum(len(p) - 1 for p in track_people.values())
    return len(track_people), fragmentation, switches


def main() -> None:
    shared = ROOT.parent / "shared"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video-dir", default=str(shared / "data" / "video"))
    parser.add_argument("--detector", default=str(shared / "models" / "scrfd_2.5g_bnkps.onnx"))
    parser.add_argument("--embedder", default=str(shared / "models" / "mobilefacenet_128d.onnx"))
    args = parser.parse_args()
    device = select_device("cpu")
    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=Path(args.detector)), device)
    embedder = ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=Path(args.embedder)), device)
    methods = ("greedy IoU", "ByteTrack", "ByteTrack + embeddings")
    print("| clip | condition | frames | faces | people | " + " | ".join(
        f"{m}: tracks / frag / IDSW" for m in methods) + " |")
    print("|---|---|---|---|---|" + "---|" * len(methods))
    totals = {(c, m): np.zeros(3, int) for c in ("as is", "knocked out") for m in methods}
    for path in sorted(Path(args.video_dir).iterdir()):
        if path.suffix not in (".mp4", ".gif"):
            continue
        frames = faces_of(path, detector, embedder)
        if sum(map(len, frames)) < 10:
            continue
        truth = pseudo_truth(frames)
        people = len({p for t in truth for p in t})
        for condition in ("as is", "knocked out"):
            kept = frames if condition == "as is" else knock_out(frames)
            kept_truth = [[truth[t][next(i for i, g in enumerate(frames[t]) if g is f)] for f in faces]
                          for t, faces in enumerate(kept)]
            cells = []
            for method in methods:
                result = scores(kept_truth, track_ids(kept, method, embedder.model_id))
                totals[condition, method] += result
                cells.append("{} / {} / {}".format(*result))
            print(f"| {path.name} | {condition} | {len(frames)} | {sum(map(len, kept))} | {people} | "
                  + " | ".join(cells) + " |", flush=True)
    for condition in ("as is", "knocked out"):
        print(f"| **all** | {condition} | | | | " + " | ".join(
            "{} / {} / {}".format(*totals[condition, m]) for m in methods) + " |")


if __name__ == "__main__":
    main()
