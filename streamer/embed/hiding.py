"""What a student taught with ``--hide-occluders`` is shown: the face with the occluder's pixels hidden.

The segmenter already says where the occluder is. Painting those pixels one flat colour (the mean of the face
the camera saw around them) takes the occluder's own look (a mask's print, a hand's skin, a phone's glare) out
of what the student has to learn to ignore: it sees the same blank wherever the same part is hidden.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MID_GREY = np.array([128, 128, 128], np.float32)  # a face hidden everywhere (no pixel left to average)


def hide_occluders(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8 ``image`` with the pixels of the (S, S) bool ``mask`` set to the mean colour of the others."""
    hidden = mask.astype(bool)
    if not hidden.any():
        return image
    visible = image[~hidden]
    fill = visible.mean(axis=0) if len(visible) else MID_GREY
    out = image.copy()
    out[hidden] = np.round(fill).astype(np.uint8)
    return out


def shown_to(student, crops: Sequence[np.ndarray], masks: Sequence[np.ndarray], rebuilt: Sequence[bool]) -> np.ndarray:
    """(n, S, S, 3) the faces as ``student`` is shown them, by the stream and the evaluation alike: each hidden
    where the segmenter found enough to inpaint (``rebuilt``) if the student was taught so, else as seen."""
    if not student.hides_occluders:
        return np.stack(crops)
    return np.stack([hide_occluders(crop, mask) if hide else crop for crop, mask, hide in zip(crops, masks, rebuilt)])
