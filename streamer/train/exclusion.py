"""Training faces like someone the evaluation names (``--exclude-like``): left out of training.

Sets of celebrities share people (CelebAMask-HQ and the CelebA identities of ``faces_eval``), so a model
trained on a bank could have seen an evaluated person under another file name. No identity labels
cross the sets: a face is left out when a judge embedder takes it for one of the excluded faces.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from streamer.datagen.face_bank import BankFace, FaceBank
from streamer.errors import ConfigError
from streamer.train.teachers import Teacher


def bank_embeddings(judge: Teacher, faces: list[BankFace], mirror: bool = False,
                    moved: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """(n, D) ``judge``'s embeddings of the bank faces as they are, in chunks (a bank can be large); with
    ``mirror``, each face's and its mirror image's added and normalised again, as a mirrored gallery holds them
    (the ArcFace template is symmetric to a pixel, so a flipped aligned face is aligned)."""
    chunks = []
    for start in range(0, len(faces), 1024):
        images = [f.image() for f in faces[start:start + 1024]]
        if moved is not None:  # each face moved as the training run cuts it (StreamCut.clean)
            images = [moved(i) for i in images]
        chunk = judge.clean_embeddings(images)
        if mirror:
            chunk = chunk + judge.clean_embeddings([np.ascontiguousarray(i[:, ::-1]) for i in images])
            chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        chunks.append(chunk)
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, 0), np.float32)


def excluded_embeddings(judge: Teacher, banks: list[Path]) -> np.ndarray:
    """``judge``'s embeddings of every face of the excluded banks (all their splits)."""
    for bank in banks:
        if not (bank / "faces.json").is_file():
            raise ConfigError(f"--exclude-like: {bank} is not a face bank (no faces.json)")
    excluded = bank_embeddings(judge, [f for bank in banks for f in FaceBank(bank).faces])
    if not len(excluded):
        raise ConfigError(f"--exclude-like: no faces in {', '.join(map(str, banks))}")
    return excluded


def unlike(judged: np.ndarray, excluded: np.ndarray, same_person: float) -> np.ndarray:
    """(n,) bool: the judged faces that are no excluded face's person (cosine below ``same_person``)."""
    if not len(judged):
        return np.zeros(0, bool)
    return np.concatenate([(judged[s:s + 4096] @ excluded.T).max(axis=1) < same_person
                           for s in range(0, len(judged), 4096)])
