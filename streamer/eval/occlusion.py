"""The occluder model on real faces, per class: what it finds, what it invents, how much of an occluder it covers.

Sets (each face found and aligned by SCRFD, as the stream does, to the stage's 112 px crop):

- ``with_mask`` / ``without_mask``: real photos of people with and without face masks, no pixel labels.
  Image level: a face mask found; any occluder; synthetic pixels (an occluder over at least the inpainting
  share of the face). Beside it, where given, the AIZOO face-mask classifier on the same photos.
- ``celebamaskhq``: real eyeglasses and hat pixels, and faces labelled clear (nothing over them). Its glasses are
  reported apart: dark lenses (``sunglasses`` by the label's own split) are to be found; clear glasses are seen
  through, and their row says how many of them would still get synthetic pixels.
- ``maskedfacenet``: face-mask pixels.
- ``seen_worn``: faces of the first two sets where a person saw a real occluder the sets do not label (caps,
  glasses and hands on the unmasked photos; hands and microphones on CelebAMask-HQ; ``occluders_seen.json``).
  They are not clear faces. Only the faces the model finds something on were looked at, so what it finds there
  is no recall.

Splits: the labelled sets' val splits (labelled_faces.py) and the masked photos' val split (a hash of the path)
choose the gate; everything reported as held out is test. A model's predictions are taken once, at the lowest
confidence, and every gate is applied to them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from streamer.datagen.face_bank import split_of
from streamer.datagen.labelled_faces import cached_labelled_faces
from streamer.errors import ConfigError
from streamer.occlusion.gate import ClassGate, OccluderGate
from streamer.occlusion.region import face_region
from streamer.records import AlignedCrop, OccluderInstance

CROP = 112
GLASSES = ("eyeglasses", "sunglasses")  # CelebAMask-HQ labels both as one class: judged together
# Of clear validation faces, the share one class may fire on at its chosen gate: a class whose real positives are
# measured here may trade one false face in a few hundred for what it finds; one whose are not, none.
FALSE_BUDGET = {"measured": 0.0025, "unmeasured": 0.001}
CONFIDENCES = tuple(round(0.15 + 0.05 * k, 2) for k in range(16))  # 0.15 .. 0.90
FACE_SHARES = (0.0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12)


@dataclass(frozen=True)
class EvalFace:
    set: str  # with_mask, without_mask, celebamaskhq, maskedfacenet
    key: str
    split: str  # train / val / test
    crop: np.ndarray  # (112, 112, 3) uint8 BGR
    truth: dict[str, np.ndarray] | None  # occluder class -> (112, 112) bool; None where the set has no pixels
    aizoo: bool | None = None  # AIZOO says "Mask" (None: it found no face, or was not run)
    outside: np.ndarray | None = None  # (112, 112) bool: crop pixels beyond the photo's edge (None: none)


class Aizoo:
    """The AIZOO face-mask SSD (OpenCV dnn, Caffe): an independent check of mask finding. Only its class
    scores are read (the verdict is its most confident anchor's class), so its boxes are not decoded."""

    def __init__(self, folder: Path):
        self.net = cv2.dnn.readNetFromCaffe(str(folder / "face_mask_detection.prototxt"),
                                            str(folder / "face_mask_detection.caffemodel"))

    def wears_mask(self, image: np.ndarray) -> bool | None:
        blob = cv2.dnn.blobFromImage(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), 1 / 255.0, (260, 260))
        self.net.setInput(blob)
        scores = self.net.forward("cls_branch_concat")[0]
        best = int(scores.max(axis=1).argmax())
        if scores[best].max() < 0.5:
            return None
        return int(scores[best].argmax()) == 0  # class 0: Mask


# Real occluders a person saw on faces of sets that have no labels for them (the unmasked photos) or miss some
# (CelebAMask-HQ labels no hands or microphones): those faces are not clear faces.
SEEN_FILE = Path(__file__).with_name("occluders_seen.json")
UNSURE = ("unsure",)


@lru_cache(maxsize=1)
def _seen() -> dict[str, dict[str, tuple[str, ...]]]:
    data = json.loads(SEEN_FILE.read_text())
    seen = {kind: {key: tuple(classes) for key, classes in faces.items()} for kind, faces in data["worn"].items()}
    for kind, faces in data["unsure"].items():
        for key in faces:
            seen.setdefault(kind, {})[key] = UNSURE
    return seen


def seen_worn(face: EvalFace) -> tuple[str, ...]:
    """The occluder classes a person saw on this face (``UNSURE`` where they could not tell; () for none seen)."""
    return _seen().get(face.set, {}).get(face.key, ())


def _alike(classes: tuple[str, ...]) -> tuple[str, ...]:
    """The classes that name one seen: glasses are judged together, as CelebAMask-HQ labels them."""
    return tuple({*classes, *(GLASSES if set(classes) & set(GLASSES) else ())})


def masked_photo_faces(folder: Path, kind: str, detector, aizoo: Aizoo | None, cache: Path,
                       progress: Callable[[str], None]) -> list[EvalFace]:
    """The aligned faces of ``folder`` (with_mask or without_mask photos), cached as an .npz."""
    from streamer.detect import align_most_confident

    if cache.is_file():
        data = np.load(cache)
        if "beyond_photo" in data.files:  # a cache made before crops said what lies beyond the photo: made again
            return [EvalFace(kind, str(k), str(s), c, None, None if a < 0 else bool(a), o if o.any() else None)
                    for k, s, c, a, o in zip(data["keys"], data["splits"], data["crops"], data["aizoo"],
                                             data["beyond_photo"])]
    faces = []
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    for index, path in enumerate(photos):
        image = cv2.imread(str(path))
        aligned = align_most_confident(detector, image, CROP) if image is not None else None
        if aligned is not None:
            faces.append(EvalFace(kind, path.name, split_of(path, folder), aligned[0].image, None,
                                  aizoo.wears_mask(image) if aizoo else None, aligned[0].outside))
        if (index + 1) % 500 == 0:
            progress(f"{kind}: {index + 1}/{len(photos)} photos aligned")
    if not faces:
        raise ConfigError(f"{folder}: no face found in any of its {len(photos)} photos")
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial.npz")
    np.savez_compressed(partial, keys=np.array([f.key for f in faces]), splits=np.array([f.split for f in faces]),
                        crops=np.stack([f.crop for f in faces]),
                        aizoo=np.array([-1 if f.aizoo is None else int(f.aizoo) for f in faces]),
                        beyond_photo=np.stack([np.zeros((CROP, CROP), bool) if f.outside is None else f.outside
                                               for f in faces]))
    partial.replace(cache)
    return faces


def labelled_eval_faces(kind: str, root: Path, detector, cache: Path,
                        progress: Callable[[str], None]) -> list[EvalFace]:
    """A labelled set's val and test faces (never its train split)."""
    faces = cached_labelled_faces(kind, root, detector, CROP, cache, progress, splits=("val", "test"))
    return [EvalFace(kind, f.key, f.split, f.image, f.masks) for f in faces]


def predict(segmenter, faces: list[EvalFace], batch: int = 64) -> list[list[OccluderInstance]]:
    """Every occluder the segmenter finds on each face, at its own lowest confidence (no gate)."""
    identity = np.eye(2, 3, dtype=np.float32)
    found = []
    for start in range(0, len(faces), batch):
        found += segmenter.instances([AlignedCrop(f.crop, identity, f.outside) for f in faces[start:start + batch]])
    return found


def _share(mask: np.ndarray) -> float:
    region = face_region(mask.shape[0])
    return float((mask & region).sum() / region.sum())


def _scored(found: list[list[OccluderInstance]], name: str) -> tuple[np.ndarray, np.ndarray]:
    """(faces, k) confidence and face share of each face's instances of ``name`` (padded: confidence -1)."""
    rows = [[(i.confidence, _share(i.mask)) for i in instances if i.name == name] for instances in found]
    confidence = np.full((len(rows), max([len(r) for r in rows] + [1])), -1.0)
    share = np.zeros_like(confidence)
    for n, row in enumerate(rows):
        for k, (c, f) in enumerate(row):
            confidence[n, k], share[n, k] = c, f
    return confidence, share


def _fires(scored: tuple[np.ndarray, np.ndarray], confidence: float, share: float, sure: float | None) -> np.ndarray:
    """(faces,) bool: a gate (as ``OccluderGate.passes``) keeps one of each face's scored instances."""
    found, covered = scored
    big = covered >= share if sure is None else (covered >= share) | (found >= sure)
    return ((found >= confidence) & (covered > 0) & big).any(axis=1)


def choose_gate(faces: list[EvalFace], found: list[list[OccluderInstance]], class_names: tuple[str, ...],
                floor: float, shipped: dict[str, ClassGate] | None = None) -> dict[str, dict]:
    """Per class, on the val faces: the gate that fires on at most its FALSE_BUDGET of clear faces and, among
    those, finds the most of its real positives; of those, the one that fires on the fewest clear faces (a
    looser gate that finds no more only adds false alarms: the first gates, lowest confidence first, took
    sunglasses down to 0.15 for one more false face and no more found), then the lowest confidence and share,
    then no ``sure`` tier (or the highest): a tier that lets a confident occluder pass at any share is taken
    where it finds more (face masks worn under the chin cover less of the face than an unsure sliver must).
    Classes without real positives here (hand, phone, ...) get the loosest gate that keeps clear faces clear, but
    are never loosened below their ``shipped`` gate while it keeps within the budget: with nothing to find,
    loosening buys nothing measured, and clear photos miss what footage shows (hand 0.45 -> 0.25 put false hands
    on 6 more chins of 93 faces in ../shared's real videos)."""
    val = [(f, i) for f, i in zip(faces, found) if f.split == "val"]
    labelled_clear = [i for f, i in val if f.truth is not None and not f.truth and not seen_worn(f)]
    if not labelled_clear:
        raise ConfigError("--choose-gate: no clear validation faces to keep clear (give --celebamaskhq)")
    # The unmasked photos hold real glasses, caps and hands: those seen are left out (occluders_seen.json).
    clear = labelled_clear + [i for f, i in val if f.set == "without_mask" and not seen_worn(f)]
    chosen = {}
    for name in class_names:
        positives = _positives(val, name)
        allowed = int(FALSE_BUDGET["measured" if positives else "unmeasured"] * len(clear))
        clear_scored, positive_scored = _scored(clear, name), _scored(positives, name)
        kept = (shipped or {}).get(name) if not positives else None
        if kept is not None:
            false = int(_fires(clear_scored, kept.confidence, kept.min_face_share, kept.sure).sum())
            if false <= allowed:
                chosen[name] = {**kept.model_dump(exclude_none=True), "val_false_faces": false,
                                "val_clear_faces": len(clear), "val_positives": 0, "val_found": 0.0}
                continue
        best = None
        for confidence in (c for c in CONFIDENCES if c >= floor):
            for share in FACE_SHARES:
                for sure in (None, *(c for c in CONFIDENCES if c > confidence)) if share else (None,):
                    false = int(_fires(clear_scored, confidence, share, sure).sum())
                    if false > allowed:
                        continue
                    found_share = float(_fires(positive_scored, confidence, share, sure).mean()) if positives else 0.0
                    key = (-found_share, false, confidence, share, 0.0 if sure is None else 1.0 - sure)
                    if best is None or key < best[0]:
                        best = (key, {"confidence": confidence, "min_face_share": share,
                                      **({"sure": sure} if sure is not None else {}),
                                      "val_false_faces": false, "val_clear_faces": len(clear),
                                      "val_positives": len(positives), "val_found": round(found_share, 4)})
        chosen[name] = best[1] if best else {"confidence": 0.99, "min_face_share": 1.0, "val_false_faces": None,
                                             "val_clear_faces": len(clear), "val_positives": len(positives),
                                             "val_found": 0.0}
    return chosen


def _positives(pairs, name: str) -> list[list[OccluderInstance]]:
    """The instances of the faces where ``name`` is really there, by pixel labels or, for face masks, the
    masked photos."""
    out = []
    for face, instances in pairs:
        if face.truth and name in face.truth:
            out.append(instances)
        elif name == "face_mask" and face.set == "with_mask":
            out.append(instances)
    return out


def measure(faces: list[EvalFace], found: list[list[OccluderInstance]], gate: OccluderGate,
            min_occluded_fraction: float, split: str = "test") -> dict:
    """The figures of one gate on one split of every set (the masked photos' val split chose the gate)."""
    rows = {}
    groups = {
        "with_mask": [(f, i) for f, i in zip(faces, found) if f.set == "with_mask" and f.split == split],
        "without_mask": [(f, i) for f, i in zip(faces, found)
                         if f.set == "without_mask" and f.split == split and not seen_worn(f)],
        "celebamaskhq_clear": [(f, i) for f, i in zip(faces, found)
                               if f.set == "celebamaskhq" and f.split == split and not f.truth and not seen_worn(f)],
        "seen_worn": [(f, i) for f, i in zip(faces, found) if f.split == split and seen_worn(f)
                      and seen_worn(f) != UNSURE],
        # Dark lenses are to be found and rebuilt; clear glasses, seen through, to keep their real pixels.
        "celebamaskhq_sunglasses": [(f, i) for f, i in zip(faces, found) if f.set == "celebamaskhq"
                                    and f.split == split and f.truth and "sunglasses" in f.truth],
        "celebamaskhq_eyeglasses": [(f, i) for f, i in zip(faces, found) if f.set == "celebamaskhq"
                                    and f.split == split and f.truth and "eyeglasses" in f.truth],
        "celebamaskhq_hat": [(f, i) for f, i in zip(faces, found)
                             if f.set == "celebamaskhq" and f.split == split and f.truth and "cap" in f.truth],
        "maskedfacenet": [(f, i) for f, i in zip(faces, found) if f.set == "maskedfacenet" and f.split == split],
    }
    for group, pairs in groups.items():
        if not pairs:
            continue
        occlusions = [gate.occlusion(i, CROP) for _, i in pairs]
        row = {"faces": len(pairs),
               "any_occluder": _rate(o.occluded for o in occlusions),
               "synthetic": _rate(o.occluded and o.fraction >= min_occluded_fraction for o in occlusions),
               "per_class": {name: _rate(name in o.classes for o in occlusions)
                             for name in sorted({n for o in occlusions for n in o.classes})}}
        aizoo = [f.aizoo for f, _ in pairs if f.aizoo is not None]
        if aizoo:
            row["aizoo_mask"] = _rate(aizoo)
            row["aizoo_faces"] = len(aizoo)
        target = {"with_mask": ("face_mask",), "maskedfacenet": ("face_mask",), "celebamaskhq_sunglasses": GLASSES,
                  "celebamaskhq_hat": ("cap",)}.get(group)
        if target:
            row["found"] = _rate(any(n in o.classes for n in target) for o in occlusions)
        if group == "seen_worn":  # picked where the model fired on something: what it names, not a recall
            row["found"] = _rate(any(n in o.classes for n in _alike(seen_worn(f)))
                                 for (f, _), o in zip(pairs, occlusions))
        if target and group != "with_mask":
            row.update(_pixels([f for f, _ in pairs], [i for _, i in pairs], occlusions, target, gate))
        rows[group] = row
    return rows


def _pixels(faces, found, occlusions, target: tuple[str, ...], gate: OccluderGate) -> dict:
    """Pixel IoU of the target class's kept instances with the labelled occluder; and how much of the labelled
    occluder the stage's mask covers, whole (now) and clipped to the face ellipse (as before)."""
    region = face_region(CROP)
    ious, covered, covered_clipped = [], [], []
    for face, instances, occlusion in zip(faces, found, occlusions):
        truth = np.any([face.truth[n] for n in target if n in face.truth], axis=0)
        kept = [i.mask for i in instances if i.name in target and gate.passes(i, _share(i.mask))]
        predicted = np.any(kept, axis=0) if kept else np.zeros_like(truth)
        union = (predicted | truth).sum()
        ious.append((predicted & truth).sum() / union if union else 1.0)
        covered.append((occlusion.mask & truth).sum() / max(1, truth.sum()))
        covered_clipped.append((occlusion.mask & region & truth).sum() / max(1, truth.sum()))
    return {"iou": float(np.mean(ious)), "truth_covered": float(np.mean(covered)),
            "truth_covered_if_clipped_to_face": float(np.mean(covered_clipped))}


def _rate(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else 0.0


def write_gate(chosen: dict[str, dict], model: Path, path: Path, faces: list[EvalFace]) -> None:
    counts = {}
    for face in faces:
        if face.split == "val":
            counts[face.set] = counts.get(face.set, 0) + 1
    path.write_text(json.dumps({
        "model": model.name,
        "chosen_on": {"val_faces": counts, "false_budget": FALSE_BUDGET,
                      "rule": "per class: at most the budget of clear val faces fire; then most real positives "
                              "found; then fewest clear val faces fired; then lowest confidence and share; then no "
                              "'sure' tier (any share from that confidence), or the highest; a class without real "
                              "positives keeps its shipped gate while that keeps within the budget",
                      "decoding": "every class an anchor scores above the floor (multi-label)"},
        "classes": chosen,
    }, indent=1) + "\n")


def gate_from(chosen: dict[str, dict], floor: float, see_through: tuple[str, ...] = ()) -> OccluderGate:
    return OccluderGate({name: ClassGate(confidence=g["confidence"], min_face_share=g["min_face_share"],
                                         sure=g.get("sure")) for name, g in chosen.items()}, floor, see_through)


def markdown(results: dict[str, dict]) -> str:
    """One table per model and gate: the rows a reader compares."""
    lines = []
    for title, rows in results.items():
        lines += [f"### {title}", "",
                  "| set (test) | faces | target found | IoU | truth covered (whole / clipped) | any occluder | "
                  "synthetic pixels | AIZOO mask |", "|---|---|---|---|---|---|---|---|"]
        for group, row in rows.items():
            covered = (f"{row['truth_covered']:.1%} / {row['truth_covered_if_clipped_to_face']:.1%}"
                       if "truth_covered" in row else "")
            lines.append(
                f"| {group} | {row['faces']} | {_pct(row.get('found'))} | "
                f"{row['iou']:.3f} | " if "iou" in row else
                f"| {group} | {row['faces']} | {_pct(row.get('found'))} | | ")
            lines[-1] += (f"{covered} | {_pct(row['any_occluder'])} | {_pct(row['synthetic'])} | "
                          f"{_pct(row.get('aizoo_mask'))} |")
        lines.append("")
        per_class = {group: row["per_class"] for group, row in rows.items() if group in
                     ("without_mask", "celebamaskhq_clear")}
        for group, classes in per_class.items():
            if classes:
                lines.append(f"{group}, faces given each class: " +
                             ", ".join(f"{n} {v:.1%}" for n, v in classes.items()))
        lines.append("")
    return "\n".join(lines)


def _pct(value) -> str:
    return "" if value is None else f"{value:.1%}"
