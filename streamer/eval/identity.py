"""``streamer eval identity``: is the right person named, across photos, per occluder and identity path?

The protocol (issue 15): people from an evaluation set no model was trained on are split, by a hash of
their folder name, into the enrolled and strangers. Each enrolled person's gallery holds ONE clean
photo; probes are OTHER photos of them, and photos of strangers, who are never enrolled. Every probe is
shown under each condition: camera faults only ("clean"), and camera faults with each occluder class of
the data engine (face masks from every template, sunglasses, hands, ...). The product's own stages then
see it as a stream would: its detector finds the face and its landmarks again in the probe as the camera saw
it (so the occluder moves them, and a face it no longer finds is a probe nobody is named for), then its
occluder segmentation (not the true mask), its inpainter, its embedders.

Identity paths: ``visible`` (the face as the camera saw it), ``student`` (the same face embedded by the
embedder's occlusion-robust student, where it has one), ``reconstruction`` (the inpainted face, where the
segmenter found an occluder; the visible face where it found none) and ``fused``, the product's decision:
the student (else the visible face), and, for the occluder classes ``gallery.reconstruction_for`` names,
each identity's better score of that and the reconstruction.

Figures per embedder, condition and path: verification (TAR at FAR 1% and 0.1%, AUC) over genuine pairs
(a probe and its own person's gallery photo) and impostor pairs (a probe and anyone else's); rank-1
identification of enrolled probes; and the open-set outcome at the operating threshold for galleries of
100, 1,000 and 10,000 people (distractor identities, one photo each, from folders of faces the probes
never come from): enrolled probes named right, named as someone else, and strangers named.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from streamer.datagen.compose import ComposeSettings, Sample, compose_landed
from streamer.datagen.face_frame import FaceFrame
from streamer.datagen.occluders import CLASSES, OccluderLibrary
from streamer.detect import align_most_confident
from streamer.embed.hiding import shown_to
from streamer.identify.calibration import ImpostorTail
from streamer.identify.frame import FrameSetting
from streamer.identify.gallery import IMAGE_SUFFIXES, GalleryIndex
from streamer.inpaint import inpaint_batched
from streamer.records import AlignedCrop
from streamer.store.gallery import ModelVectors

CONDITIONS = ("clean", *CLASSES)
# "student" where the embedder has one; "fused_recommended": the product's rule with the classes this evaluation
# recommends for gallery.reconstruction_for, where they differ from the config's
PATHS = ("visible", "student", "reconstruction", "fused", "fused_recommended")
FAULTS = ComposeSettings(degrade_share=1.0)  # every probe through the camera faults; the gallery photo is clean
BATCH = 64


@dataclass(frozen=True)
class IdentitySettings:
    size: int = 112  # aligned crop side, as the stream's pipeline.crop_size
    probes_per_person: int = 3
    strangers_share: float = 1 / 3
    seed: int = 0
    people: int | None = None  # use at most this many people of the set (quick runs)
    conditions: tuple[str, ...] = CONDITIONS
    gallery_sizes: tuple[int, ...] = (100, 1000, 10000)
    min_occluded_fraction: float = 0.05  # as pipeline.min_occluded_fraction: less hidden is not inpainted
    # Distractors at least this like an evaluated face (the config's embedder; its own threshold if higher) are
    # left out: maybe the same person.
    same_person_similarity: float = 0.5
    # "detector": each probe is aligned by the detector's landmarks on the probe itself, as the stream aligns
    # what the camera sees; "photo": by the landmarks of the clean photo the probe was composed on (before
    # 2026-12-04: it spares every path the landmarks an occluder moves, which flattered occluded faces).
    probe_alignment: Literal["detector", "photo"] = "detector"


@dataclass
class Photo:
    person: str
    path: Path
    crop: np.ndarray  # (S, S, 3) uint8 BGR, aligned
    points: np.ndarray  # (5, 2) its landmarks in the crop
    outside: np.ndarray | None = None  # (S, S) bool: crop pixels beyond the photo's edge (None: none)


@dataclass
class Probes:
    """Every probe image of one condition, row-aligned."""

    condition: str
    people: list[str]  # whose photo each is
    enrolled: np.ndarray  # (n,) bool: the person is enrolled (else a stranger)
    images: np.ndarray  # (n, S, S, 3) uint8 BGR, as the camera saw them
    masks: np.ndarray  # (n, S, S) bool: what the product's segmenter found
    found: list[tuple[str, ...]]  # the classes it named
    reconstructions: np.ndarray  # (n, S, S, 3): inpainted where it found enough, else the image itself
    detected: np.ndarray | None = None  # (n,) bool: the detector found the face in the probe; None: all
    # (n,) how far the detector's 5 points on the probe lie from the clean photo's, in eye distances (mean of
    # the 5); NaN where it found none; None: probes cut by the photo's points
    strayed: np.ndarray | None = None


@dataclass
class EvalData:
    enrolled: list[str]
    strangers: list[str]
    gallery: np.ndarray  # (E, S, S, 3): one clean photo per enrolled person, in ``enrolled`` order
    distractors: np.ndarray  # (D, S, S, 3): one face each of people outside the evaluation set
    probes: list[Probes]
    skipped_photos: int  # photos where the detector found no face
    dropped_distractors: int = 0  # distractors too like someone of the evaluation set (maybe the same person)
    seconds: dict[str, float] = field(default_factory=dict)
    like_judged_by: str = ""  # the embedder and cosine that judged them so


def list_people(folder: Path, limit: int | None = None) -> dict[str, list[Path]]:
    people = {}
    for entry in sorted(p for p in folder.iterdir() if p.is_dir()):
        photos = sorted(p for p in entry.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(photos) >= 2:  # a gallery photo and at least one other
            people[entry.name] = photos
    if not people:
        raise ValueError(f"no person folders with two photos or more in {folder} (expected DIR/<person>/*.jpg)")
    names = list(people)[:limit] if limit else list(people)
    return {name: people[name] for name in names}


def is_stranger(person: str, share: float, seed: int) -> bool:
    """By a hash of the name: the same split whatever the order or number of people listed."""
    digest = hashlib.sha256(f"{seed}:{person}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


class AlignmentCache:
    """Each photo's aligned face (or that it has none), kept between runs: aligning 10,000 distractors costs
    most of a run, and it depends only on the photo, the detector and the crop size."""

    def __init__(self, folder: Path | None, detector, size: int):
        # "beyond photo": caches made before crops said which pixels lie beyond the photo's edge are not read
        key = hashlib.sha256(f"{detector.description}|{size}|beyond photo".encode()).hexdigest()[:12]
        self.path = folder / f"aligned-{key}.npz" if folder else None
        self.detector, self.size = detector, size
        self._known: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None] | None] = {}
        self._added = False
        if self.path and self.path.exists():
            with np.load(self.path) as data:
                for name, crop, points, outside, found in zip(data["paths"], data["crops"], data["points"],
                                                              data["outside"], data["found"]):
                    self._known[str(name)] = (crop, points, outside if outside.any() else None) if found else None

    def align(self, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        """(crop, its 5 points, its pixels beyond the photo's edge) of the photo's most confident face, or None."""
        name = str(path.resolve())
        if name not in self._known:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            found = align_most_confident(self.detector, image, self.size) if image is not None else None
            self._known[name] = (found[0].image, found[1], found[0].outside) if found else None
            self._added = True
        return self._known[name]

    def save(self) -> None:
        if not self.path or not self._added:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        names = list(self._known)
        none = np.zeros((self.size, self.size), bool)
        blank = (np.zeros((self.size, self.size, 3), np.uint8), np.zeros((5, 2), np.float32), none)
        items = [self._known[n] or blank for n in names]
        np.savez(self.path.with_suffix(".tmp.npz"), paths=np.array(names), crops=np.stack([i[0] for i in items]),
                 points=np.stack([i[1] for i in items]),
                 outside=np.stack([none if i[2] is None else i[2] for i in items]),
                 found=np.array([self._known[n] is not None for n in names]))
        self.path.with_suffix(".tmp.npz").replace(self.path)


def align_photos(paths: list[Path], cache: AlignmentCache, person: str) -> tuple[list[Photo], int]:
    photos, skipped = [], 0
    for path in paths:
        found = cache.align(path)
        if found is None:
            skipped += 1
            continue
        photos.append(Photo(person, path, *found))
    return photos, skipped


def build(faces: Path, distractor_folders: list[Path], stages, library: OccluderLibrary, settings: IdentitySettings,
          progress: Callable[[str], None] = lambda line: None, cache_dir: Path | None = None,
          judge=None) -> EvalData:
    """Aligns every photo with the stages' detector (kept in ``cache_dir`` between runs), composes the probes,
    and runs them through the stages' segmenter and inpainter (the embedders come later: the same probes
    serve each). ``judge``: the embedder that says which distractors may be an evaluated person (default: the
    stages' own)."""
    started = time.perf_counter()
    cache = AlignmentCache(cache_dir, stages.detector, settings.size)
    people = list_people(faces, settings.people)
    enrolled, strangers, gallery, probe_photos, skipped = [], [], [], [], 0
    for k, (person, paths) in enumerate(people.items()):
        photos, missed = align_photos(paths, cache, person)
        skipped += missed
        stranger = is_stranger(person, settings.strangers_share, settings.seed)
        if len(photos) < (1 if stranger else 2):
            continue
        if stranger:
            strangers.append(person)
            probe_photos += photos[:settings.probes_per_person]
        else:
            enrolled.append(person)
            gallery.append(photos[0].crop)
            probe_photos += photos[1:1 + settings.probes_per_person]
        if (k + 1) % 50 == 0:
            progress(f"aligned {k + 1}/{len(people)} people")
    seconds = {"align": time.perf_counter() - started}
    distractors = _distractors(distractor_folders, cache, settings, progress)
    cache.save()
    everyone = np.stack([p.crop for p in probe_photos] + gallery)
    # "Like" is judged at the embedder's own scale: dlib's different people score 0.78-0.90, ArcFace's about 0.
    # At its own threshold dlib finds most faces like one of ~750 evaluated faces (it names 1% of strangers at
    # one comparison), and keeps only distractors unlike everyone probed, which flatters the large galleries: a
    # sharper judge (an ArcFace model, --judge) drops about the celebrities the sets share.
    judge = judge or stages.embedder
    similarity = max(settings.same_person_similarity, judge.default_threshold)
    distractors, dropped = _unlike(distractors, everyone, judge, similarity)
    progress(f"distractors: {len(distractors)} kept, {dropped} left out as like an evaluated face "
             f"({judge.description}, cosine >= {similarity:.3f})")
    seconds["distractors"] = time.perf_counter() - started - seconds["align"]
    probes = []
    for condition in settings.conditions:
        t = time.perf_counter()
        probes.append(compose_probes(condition, probe_photos, set(enrolled), stages, library, settings))
        seconds[condition] = time.perf_counter() - t
        progress(f"probes, {condition}: {len(probe_photos)} through the segmenter and inpainter")
    return EvalData(enrolled, strangers, np.stack(gallery), distractors, probes, skipped, dropped, seconds,
                    f"{judge.description}, cosine >= {similarity:.3f}")


def _distractors(folders: list[Path], cache: AlignmentCache, settings: IdentitySettings, progress) -> np.ndarray:
    wanted = max(settings.gallery_sizes, default=0)
    paths = [p for folder in folders for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    rng = np.random.default_rng(settings.seed)
    paths = [paths[i] for i in rng.permutation(len(paths))[:wanted]]
    crops = []
    for k, path in enumerate(paths):
        photos, _ = align_photos([path], cache, "distractor")
        crops += [p.crop for p in photos]
        if (k + 1) % 500 == 0:
            progress(f"distractors: {k + 1}/{len(paths)} photos")
    return np.stack(crops) if crops else np.zeros((0, settings.size, settings.size, 3), np.uint8)


def _unlike(distractors: np.ndarray, faces: np.ndarray, embedder, similarity: float) -> tuple[np.ndarray, int]:
    """The distractors whose face is not like any of ``faces``: sets of celebrities (CelebAMask-HQ, CelebA)
    share people, and a distractor who is an evaluated person would count a right match as a wrong one."""
    if not len(distractors) or similarity >= 1:
        return distractors, 0
    reference = embed_all(embedder, faces)
    closest = np.concatenate([(embed_all(embedder, distractors[s:s + 1024]) @ reference.T).max(axis=1)
                              for s in range(0, len(distractors), 1024)])
    keep = closest < similarity
    return distractors[keep], int((~keep).sum())


def compose_probes(condition: str, photos: list[Photo], enrolled: set[str], stages, library: OccluderLibrary,
                   settings: IdentitySettings) -> Probes:
    images, outside, detected, strayed = [], [], [], []
    for k, photo in enumerate(photos):
        sample = probe_sample(photo.crop, photo.points, condition, k, library, settings.seed)
        image, beyond, found = sample.occluded, photo.outside, True
        if settings.probe_alignment == "detector":
            again = align_most_confident(stages.detector, image, settings.size)
            found = again is not None
            if found:
                image, beyond = again[0].image, _beyond(again[0], photo.outside)
            strayed.append(_strayed(*again, photo.points) if found else np.nan)
        images.append(image)
        outside.append(beyond)
        detected.append(found)
    images = np.stack(images)
    masks, found, reconstructions = _product_stages(images, outside, stages, settings.min_occluded_fraction)
    return Probes(condition, [p.person for p in photos], np.array([p.person in enrolled for p in photos]), images,
                  masks, found, reconstructions, np.array(detected), np.array(strayed) if strayed else None)


def probe_sample(crop: np.ndarray, points: np.ndarray, condition: str, k: int, library: OccluderLibrary,
                 seed: int) -> Sample:
    """Probe number ``k`` of ``condition``: the aligned clean ``crop`` (its 5 ``points``) under the condition's
    occluder and camera faults. Each (condition, photo) draws from its own random stream, so a condition's probes
    are the same in every run and in every benchmark that composes them so."""
    rng = np.random.default_rng([seed, CONDITIONS.index(condition), k])
    return compose_landed(crop, points, library, rng, FAULTS, [] if condition == "clean" else [condition])


def _strayed(crop: AlignedCrop, points_in_crop: np.ndarray, photo_points: np.ndarray) -> float:
    """Mean distance of the detector's 5 points (given in its new crop) from the photo's, in eye distances."""
    back = cv2.transform(points_in_crop[None].astype(np.float32), cv2.invertAffineTransform(crop.matrix))[0]
    return float(np.linalg.norm(back - photo_points, axis=1).mean() / FaceFrame(photo_points).eye_distance)


def _beyond(crop: AlignedCrop, photo_outside: np.ndarray | None) -> np.ndarray | None:
    """The pixels of a probe cut again from the first crop that lie beyond that crop or beyond the photo."""
    if photo_outside is None:
        return crop.outside
    size = crop.image.shape[0]
    moved = cv2.warpAffine(photo_outside.astype(np.uint8), crop.matrix, (size, size), flags=cv2.INTER_NEAREST) > 0
    return moved if crop.outside is None else moved | crop.outside


def _product_stages(images: np.ndarray, outside: list[np.ndarray | None], stages, min_fraction: float):
    """The stream's segmenter and inpainter on the probes, batched as the stream batches them."""
    identity = np.eye(2, 3, dtype=np.float32)  # the crops are aligned already: the matrix is not used
    masks, found = [], []
    for start in range(0, len(images), BATCH):
        batch = [AlignedCrop(im, identity, beyond) for im, beyond in zip(images[start:start + BATCH],
                                                                       outside[start:start + BATCH])]
        for occlusion in stages.segmenter.segment(batch):
            masks.append(occlusion.mask)
            found.append(occlusion.classes if occlusion.fraction >= min_fraction else ())
    masks = np.stack(masks)
    reconstructions = images.copy()
    todo = np.flatnonzero([bool(f) for f in found])
    if len(todo):
        reconstructions[todo] = inpaint_batched(stages.inpainter, images[todo], masks[todo])
    return masks, found, reconstructions


# -- scoring -------------------------------------------------------------------------------------------


def embed_all(embedder, images: np.ndarray) -> np.ndarray:
    return np.concatenate([embedder.embed(images[s:s + BATCH]) for s in range(0, len(images), BATCH)]) \
        if len(images) else np.zeros((0, 0), np.float32)


def gallery_index(model_id: str, vectors: np.ndarray, tail: ImpostorTail | None = None,
                  frame: FrameSetting | None = None) -> GalleryIndex:
    """Identity k is row k: the product's own index, its own scoring (in its own frame, with ``frame``)."""
    n = len(vectors)
    return GalleryIndex(model_id, ModelVectors(np.arange(n, dtype=np.int64), np.ones(n, np.int8), vectors,
                                               {i: str(i) for i in range(n)}, {i: "person" for i in range(n)}),
                        tail, frame)


@dataclass
class ProbeVectors:
    """One embedder's embeddings of one condition's probes, per identity path (made once, scored against
    the enrolled and the distractors alike)."""

    visible: np.ndarray  # (n, D): the embedder's own, of the face as seen
    weights: np.ndarray | None  # (n, D) dimensions the camera saw (LBP); None: all
    student: np.ndarray | None  # (n, D): its student's, of the face as seen; None: no student
    reconstruction: np.ndarray  # (n, D): of the reconstruction where one was made, else of the face as seen
    rebuilt: np.ndarray  # (n,) bool: a reconstruction was made (the segmenter found enough)
    used: np.ndarray  # (n,) bool: ... and the product matches it (gallery.reconstruction_for)
    detected: np.ndarray | None = None  # (n,) bool: the detector found the face; None: all

    @property
    def paths(self) -> tuple[str, ...]:
        return ("visible", *(("student",) if self.student is not None else ()), "reconstruction", "fused")


def matched(found: list[tuple[str, ...]], classes: list[str] | None) -> np.ndarray:
    """(n,) bool: the product would match each probe's reconstruction, given the occluder classes found on it
    and ``gallery.reconstruction_for`` (None: every class)."""
    return np.array([classes is None or any(c in classes for c in f) for f in found], bool)


def probe_vectors(embedder, probes: Probes, reconstruction_for: list[str] | None = None) -> ProbeVectors:
    visible = embed_all(embedder, probes.images)
    rebuilt = np.array([bool(f) for f in probes.found])
    reconstructed = visible.copy()
    if rebuilt.any():
        reconstructed[rebuilt] = embed_all(embedder, probes.reconstructions[rebuilt])
    student = None
    if embedder.student is not None:  # shown the probes as the stream shows them
        student = embed_all(embedder.student, shown_to(embedder.student, probes.images, probes.masks, rebuilt))
    used = rebuilt & matched(probes.found, reconstruction_for)
    # LBP matches on the cells the camera saw; ArcFace and dlib: None
    return ProbeVectors(visible, embedder.visible_dims(probes.masks), student, reconstructed, rebuilt, used,
                        probes.detected)


def path_scores(index: GalleryIndex, vectors: ProbeVectors) -> dict[str, np.ndarray]:
    """(n probes, k identities) cosine scores per identity path. ``fused`` is the product's decision: what
    the camera saw (by the student where there is one), and where the reconstruction is matched, each
    identity's better score of the two."""
    _, seen = index.scores(vectors.visible, vectors.weights)
    scores = {"visible": seen}
    if vectors.student is not None:
        scores["student"] = index.scores(vectors.student)[1]
    _, rebuilt = index.scores(vectors.reconstruction)
    scores["reconstruction"] = np.where(vectors.rebuilt[:, None], rebuilt, seen)
    camera = scores.get("student", seen)
    scores["fused"] = np.where(vectors.used[:, None], np.maximum(camera, rebuilt), camera)
    if vectors.detected is not None:  # a face the detector missed is matched with nobody on any path
        for path in scores:
            scores[path] = np.where(vectors.detected[:, None], scores[path], -np.inf)
    return scores


def roc(genuine: np.ndarray, impostor: np.ndarray) -> dict:
    """AUC, and the TAR at FAR 1% and 0.1% (thresholds from the impostor scores)."""
    scores = np.concatenate([genuine, impostor])
    ranks = np.argsort(np.argsort(scores, kind="stable"), kind="stable") + 1
    auc = (ranks[:len(genuine)].sum() - len(genuine) * (len(genuine) + 1) / 2) / max(len(genuine) * len(impostor), 1)
    out = {"auc": round(float(auc), 4)}
    ordered = np.sort(impostor)[::-1]
    for far in (0.01, 0.001):
        threshold = ordered[min(int(far * len(ordered)), len(ordered) - 1)] if len(ordered) else 1.0
        out[f"tar@far{far:g}"] = round(float((genuine > threshold).mean()), 4) if len(genuine) else None
    return out


def verification(scores: np.ndarray, probes: Probes, enrolled: list[str]) -> dict:
    """Over the enrolled people's gallery: genuine pairs, impostor pairs, rank-1. A probe whose face the
    detector missed (scores of -inf) is a genuine pair rejected at every threshold and ranks nobody first; it
    makes no impostor pairs."""
    own, genuine, impostor = pairs(scores, probes, enrolled)
    known = own >= 0
    out = roc(genuine, impostor)
    first = (scores[known].argmax(axis=1) == own[known]) & np.isfinite(scores[known].max(axis=1, initial=-np.inf))
    out["rank1"] = round(float(first.mean()), 4) if known.any() else None
    out["genuine_pairs"], out["impostor_pairs"] = int(known.sum()), len(impostor)
    return out


def pairs(scores: np.ndarray, probes: Probes, enrolled: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each probe's own column (-1: a stranger), the genuine scores (one per enrolled probe) and the impostor
    scores (every other pair of a probe whose face was found)."""
    column = {person: k for k, person in enumerate(enrolled)}
    own = np.array([column.get(p, -1) for p in probes.people])
    known = own >= 0
    impostor_mask = np.isfinite(scores)
    impostor_mask[np.flatnonzero(known), own[known]] = False
    return own, scores[known, own[known]], scores[impostor_mask]


def open_set(scores: np.ndarray, own: np.ndarray, threshold: float | np.ndarray) -> dict:
    """At ``threshold`` (one, or one per probe): enrolled probes (own >= 0) named right / named as someone
    else; strangers (own < 0) named as anyone."""
    best, named = scores.argmax(axis=1), scores.max(axis=1) >= threshold
    known = own >= 0
    right = named & known & (best == own)
    return {"named_right": _share(right, known), "named_wrong": _share(named & known & ~right, known),
            "strangers_named": _share(named & ~known, ~known)}


def _share(hits: np.ndarray, among: np.ndarray) -> float | None:
    return round(float(hits[among].mean()), 4) if among.any() else None


def gallery_sizes(wanted: tuple[int, ...], enrolled: int, distractors: int) -> list[int]:
    """The gallery sizes that can be made: a size beyond everyone enrolled plus every distractor becomes
    that total (said as such), once."""
    sizes = sorted({min(size, enrolled + distractors) for size in wanted})
    return [size for size in sizes if size > 0]


def gallery_sweep(scores_vs_enrolled: np.ndarray, scores_vs_distractors: np.ndarray, probes: Probes,
                  enrolled: list[str], sizes: list[int],
                  threshold: float | Callable[[int], float | np.ndarray], list_strangers: bool = False
                  ) -> dict[int, dict]:
    """The open set as the gallery grows: fewer than everyone enrolled (the first N people; the probes of
    the others left out), or everyone plus the first distractors up to N. ``threshold``: one, or one per
    gallery size (a threshold calibrated to the gallery), which may differ per probe (the product compares
    a face matched on its reconstruction as well twice with each identity); the highest is reported. With
    ``list_strangers``, each stranger named is listed with whom it was taken for: a set whose labels split one
    person in two shows it."""
    column = {person: k for k, person in enumerate(enrolled)}
    own = np.array([column.get(p, -1) for p in probes.people])
    strangers = ~probes.enrolled
    out = {}
    for size in sizes:
        at = np.broadcast_to(threshold(size) if callable(threshold) else threshold, (len(own),))
        if size <= len(enrolled):
            keep = strangers | ((own >= 0) & (own < size))
            scores = scores_vs_enrolled[:, :size]
        else:
            keep = np.ones(len(own), bool)
            scores = np.hstack([scores_vs_enrolled, scores_vs_distractors[:, :size - len(enrolled)]])
        out[size] = open_set(scores[keep], np.where(strangers, -1, own)[keep], at[keep])
        out[size]["threshold"] = round(float(at.max()), 4)
        if not list_strangers:
            continue
        best = scores.argmax(axis=1) if scores.shape[1] else np.zeros(len(own), int)
        names = [*enrolled[:size], *(f"distractor {k}" for k in range(max(size - len(enrolled), 0)))]
        out[size]["strangers_taken_for"] = [[probes.people[i], names[best[i]], round(float(scores[i, best[i]]), 4)]
                                            for i in np.flatnonzero(strangers)
                                            if scores.shape[1] and scores[i, best[i]] >= at[i]]
    return out
