"""Glasses named by their lenses: sunglasses hide the eyes, clear glasses let the camera see them.

The occluder model learnt the two classes from CelebAMask-HQ, whose one glasses label was split by how dark the
glasses' pixels are (``streamer/datagen/labelled_faces.py``, ``DARK_LENS``). On footage it does not keep to that:
on ../shared's Intel clips it calls clear glasses with dark frames ``sunglasses`` at up to 0.87 (8 of the 10 faces
given synthetic pixels there, ``benchmarks/occlusion_footage.py``). Measured on the picture itself, those lenses
are as light as the face: their pixels' mean grey is 0.90-0.95 of the face's uncovered skin.

So a ``sunglasses`` whose glasses are that light is named ``eyeglasses``. The ratio is taken against the face's
own skin, not as an absolute grey level, so that a dim or bright camera does not move it. Only this way round:
as a classifier of its own the ratio is no better than the model (CelebAMask-HQ train split, 195 glasses:
dark frames and shaded eyes make clear glasses read dark), but the model's ``sunglasses`` above it are its errors.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from streamer.occlusion.region import face_region
from streamer.records import OccluderInstance

# Chosen on CelebAMask-HQ's train split (195 faces with labelled glasses, the model's most confident glasses on
# each): the lightest pair it rightly names sunglasses measures 0.69, and a threshold anywhere in 0.70-0.85
# renames none of them. 0.80 sits between that and the clear glasses of the Intel clips (0.90 and up).
LIGHT_LENS_RATIO = 0.80
LEAST_SKIN_PX = 50  # fewer uncovered face pixels than this (a face hidden all over): the lenses are not judged


def skin_grey(grey: np.ndarray, covered: np.ndarray) -> float | None:
    """The median grey of the face area no occluder covers and the camera saw (``covered``: every occluder found
    and the crop's pixels beyond the frame, (S, S) bool); None when too little of it is seen to compare with."""
    skin = face_region(grey.shape[0]) & ~covered
    return float(np.median(grey[skin])) if skin.sum() >= LEAST_SKIN_PX else None


def lens_ratio(grey: np.ndarray, glasses: np.ndarray, skin: float) -> float:
    """How light the glasses are against the face: the mean grey of their pixels over the skin's (``skin_grey``)."""
    return float(grey[glasses].mean()) / max(skin, 1.0)


def named_by_lenses(instances: list[OccluderInstance], image: np.ndarray,
                    outside: np.ndarray | None = None) -> list[OccluderInstance]:
    """The occluders found on one face, each ``sunglasses`` whose glasses are as light as clear glasses
    (``LIGHT_LENS_RATIO``) named ``eyeglasses``, with its confidence. ``outside``: the crop's pixels beyond
    the frame (the edge replicated into streaks), which are no skin to compare with."""
    if not any(instance.name == "sunglasses" for instance in instances):
        return instances
    covered = np.any([instance.mask for instance in instances], axis=0)
    if outside is not None:
        covered = covered | outside
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    skin = skin_grey(grey, covered)
    if skin is None:  # a face hidden all over: the lenses are not judged
        return instances
    return [replace(instance, name="eyeglasses")
            if instance.name == "sunglasses" and instance.mask.any()
            and lens_ratio(grey, instance.mask, skin) >= LIGHT_LENS_RATIO else instance
            for instance in instances]
