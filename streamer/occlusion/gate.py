"""The precision gate: which occluders a segmenter found are certain enough to replace real pixels.

A face keeps its real pixels unless an occluder over it passes its class's gate: a minimum confidence and a
minimum share of the face area it covers. A model's gate is chosen on validation data (``streamer eval
occlusion --choose-gate``) and shipped beside it as ``<model>.gate.json``; ``occlusion.gate`` in the config
overrides it per class. A kept occluder's mask is used whole, inside the crop, not clipped to the face area,
so a face mask's rims at the chin and the cheeks are inpainted with it rather than left to bleed into the fill.
Classes the face is seen through (clear glasses, ``occlusion.see_through``) never pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import Field, ValidationError, model_validator

from streamer.config_base import StrictModel
from streamer.errors import ConfigError, ModelError
from streamer.occlusion.region import face_region
from streamer.records import OccluderInstance, Occlusion

# A class no gate file or config names (a model trained here before its gate is chosen): ultralytics' own default
# confidence, not the decoding floor, which a chosen gate may go down to for a class measured there.
UNGATED_CONFIDENCE = 0.25


class ClassGate(StrictModel):
    confidence: float = Field(ge=0, lt=1, description="the least confidence an occluder of this class needs")
    min_face_share: float = Field(
        0.0, ge=0, le=1, description="the least share of the face area it must cover (0: it must touch the face)"
    )
    sure: float | None = Field(
        None, gt=0, lt=1, description="from this confidence on, an occluder passes whatever share of the face it "
        "covers (a face mask worn under the chin covers little of it); null: min_face_share always applies"
    )

    @model_validator(mode="after")
    def _sure_above_confidence(self):
        if self.sure is not None and self.sure < self.confidence:
            raise ValueError(f"sure ({self.sure}) must be at least confidence ({self.confidence})")
        return self


def gate_file(model: Path) -> Path:
    """Where a model's chosen gate is kept: beside it, ``<stem>.gate.json``."""
    return model.with_name(model.stem + ".gate.json")


def read_gate_file(path: Path) -> dict[str, ClassGate]:
    """The per-class gate of a ``.gate.json`` ({"classes": {name: {confidence, min_face_share}}, ...})."""
    try:
        classes = json.loads(path.read_text())["classes"]
        # Beside each class's gate, the file keeps what it was chosen on (val_* figures): not settings.
        return {str(name): ClassGate(**{k: v for k, v in values.items() if not k.startswith("val_")})
                for name, values in classes.items()}
    except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
        raise ModelError(f"{path}: not a gate file ({type(exc).__name__}); expected "
                         '{"classes": {NAME: {"confidence": C, "min_face_share": S, "sure": C2 or null}}}') from None


# Classes the camera sees the face through, where a model names them: found, but they never replace real pixels.
# On real photos of people never trained on (faces_eval), rebuilding the clear glasses the stream found lowered
# rank-1 identification from 0.849 (as seen) to 0.792 with MobileFaceNet's fused score, 0.604 on the
# reconstruction alone; dlib: 0.774 to 0.755 (one probe of 53), 0.396 alone (benchmarks/glasses_identity.py).
SEE_THROUGH = ("eyeglasses",)


class OccluderGate:
    def __init__(self, classes: dict[str, ClassGate], floor: float, see_through: tuple[str, ...] = ()):
        """``classes``: each named class's gate; any other class needs ``floor`` confidence and to touch the
        face. No class is ever kept below ``floor``, the segmenter's own threshold. ``see_through``: classes
        that never pass (the face is seen through them)."""
        self.classes = classes
        self.floor = floor
        self.see_through = see_through

    @classmethod
    def for_model(cls, model: Path, overrides: dict[str, ClassGate] | None, floor: float,
                  class_names: tuple[str, ...], see_through: list[str] | None = None) -> OccluderGate:
        """The model's shipped gate (if it has one), with the config's per-class overrides over it; a class
        neither names needs UNGATED_CONFIDENCE (or the floor, if higher). ``see_through``: the config's list
        (None: SEE_THROUGH, those of them the model names)."""
        path = gate_file(model)
        classes = read_gate_file(path) if path.is_file() else {}
        named = [(f"occlusion.gate.{name}" if name in (overrides or {}) else str(path), name)
                 for name in [*classes, *(overrides or {})]]
        named += [("occlusion.see_through", name) for name in see_through or ()]
        for where, name in named:
            if name not in class_names:
                raise ConfigError(f"{where}: the model {model.name} has no class {name!r} "
                                  f"(its classes: {', '.join(class_names)})")
        ungated = {name: ClassGate(confidence=max(floor, UNGATED_CONFIDENCE)) for name in class_names}
        through = tuple(see_through) if see_through is not None else tuple(c for c in SEE_THROUGH if c in class_names)
        return cls({**ungated, **classes, **(overrides or {})}, floor, through)

    def passes(self, instance: OccluderInstance, face_share: float) -> bool:
        if instance.name in self.see_through:
            return False
        gate = self.classes.get(instance.name)
        confidence, share = (gate.confidence, gate.min_face_share) if gate else (0.0, 0.0)
        sure = gate is not None and gate.sure is not None and instance.confidence >= gate.sure
        return instance.confidence >= max(confidence, self.floor) and face_share > 0 and (face_share >= share or sure)

    def occlusion(self, instances: list[OccluderInstance], size: int) -> Occlusion:
        """The face's occlusion: the union of the occluders that pass, whole; its share of the face area."""
        region = face_region(size)
        area = region.sum()
        mask = np.zeros((size, size), bool)
        names = set()
        for instance in instances:
            if self.passes(instance, float((instance.mask & region).sum() / area)):
                mask |= instance.mask
                names.add(instance.name)
        return Occlusion(mask=mask, classes=tuple(sorted(names)), fraction=float((mask & region).sum() / area))

    def describe(self) -> str:
        through = f"; seen through: {', '.join(self.see_through)}" if self.see_through else ""
        if not self.classes:
            return f"confidence {self.floor:g}{through}"
        return "gate " + ", ".join(f"{name} {gate.confidence:.2f}"
                                   + (f"/{gate.min_face_share:.0%}" if gate.min_face_share else "")
                                   + (f" (any share from {gate.sure:.2f})" if gate.sure is not None else "")
                                   for name, gate in sorted(self.classes.items())
                                   if name not in self.see_through) + through
