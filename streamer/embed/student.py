"""A student embedder: its teacher's ONNX graph with retrained weights, and the teacher it belongs to.

The student (``streamer train embedder``) maps an occluded face to where its teacher puts the same face
clean, so its embeddings are compared with a gallery the TEACHER embedded. That only holds for the very
teacher it learned from: the file names it (a fingerprint of the teacher's bytes, in the ONNX metadata),
and the stream refuses a student whose teacher is not its embedder's model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from streamer.errors import ModelError
from streamer.model_files import fingerprint

TEACHER_KEY = "streamer.student_of"
RECIPE_KEY = "streamer.recipe"


def teacher_of(path: Path) -> str | None:
    """The fingerprint of the teacher a student ONNX was trained from; None for any other model; ValueError for
    a file that is not ONNX. Read by ONNX Runtime: every default dlib start asks it of the shipped student."""
    return _metadata(path).get(TEACHER_KEY)


def _metadata(path: Path) -> dict[str, str]:
    from streamer.model_files import onnx_header

    try:
        _, metadata = onnx_header(path)
    except Exception as exc:  # noqa: BLE001 - whatever ONNX Runtime raises for a file it cannot read
        raise ValueError(f"{path} is not an ONNX file ({type(exc).__name__})") from None
    return metadata


def hides_occluders(recipe: dict) -> bool:
    """Whether a student's recipe (``check_student``'s) taught it faces whose occluder pixels were hidden
    (``--hide-occluders``): the stream then shows it each face so hidden where its segmenter found an occluder
    (embed/hiding.py)."""
    return recipe.get("hide_occluders", 0.0) > 0


def student_file_teacher(path: Path, flag: str) -> str:
    """The fingerprint of the teacher of the student ONNX a command-line ``flag`` names; else a one-line
    ConfigError naming the flag and the file."""
    from streamer.errors import ConfigError

    if not path.is_file():
        raise ConfigError(f"{flag}: not found: {path}")
    try:
        teacher = teacher_of(path)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None
    if teacher is None:
        raise ConfigError(f"{flag}: {path} is not a student embedder (made by 'streamer train embedder')")
    return teacher


def check_student(path: Path, teacher: str) -> dict:
    """The recipe ``path`` was trained by (its settings); a ModelError unless it is a student trained from the model
    whose fingerprint is ``teacher``."""
    try:
        metadata = _metadata(path)
    except ValueError as exc:
        raise ModelError(f"embedder.student: {exc}") from None
    trained_from = metadata.get(TEACHER_KEY)
    if trained_from is None:
        raise ModelError(f"embedder.student: {path} is not a student embedder (train one with 'streamer train "
                         f"embedder --teacher MODEL')")
    if trained_from != teacher:
        raise ModelError(f"embedder.student: {path} was trained from another model (sha256 {trained_from}...) "
                         f"than the embedder's model (sha256 {teacher}...): its embeddings cannot be compared with "
                         f"that gallery")
    return json.loads(metadata.get(RECIPE_KEY) or "{}")


def write_student(teacher: Path, weights: dict[str, np.ndarray], out: Path, recipe: dict) -> Path:
    """The teacher's graph with ``weights`` (ONNX initializer name -> array) in place of its own, as ``out``."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(teacher))
    replaced = 0
    for index, init in enumerate(model.graph.initializer):
        if init.name in weights:
            array = np.asarray(weights[init.name]).astype(numpy_helper.to_array(init).dtype)
            model.graph.initializer[index].CopyFrom(numpy_helper.from_array(array, init.name))
            replaced += 1
    if replaced == 0:
        raise ValueError(f"none of the student's weights match an initializer of {teacher}")
    return save_student(model, fingerprint(teacher), recipe, out)


def save_student(model, teacher: str, recipe: dict, out: Path) -> Path:
    """The ONNX ``model`` stamped as a student of the model whose fingerprint is ``teacher``, written atomically
    to ``out``: a run killed while writing leaves the previous file, never half a model."""
    import onnx

    for key, value in ((TEACHER_KEY, teacher), (RECIPE_KEY, json.dumps(recipe, sort_keys=True))):
        kept = [p for p in model.metadata_props if p.key != key]
        del model.metadata_props[:]
        model.metadata_props.extend(kept)
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    onnx.save(model, str(tmp))
    tmp.replace(out)
    return out


def store_half(source: Path, out: Path, least: int = 1024) -> Path:
    """``source`` with each float32 weight of ``least`` elements or more kept as float16 and cast back to float32
    where the graph reads it: half the file for a model shipped in the repository, computed as before (float32)
    but for the weights' rounding. The student's metadata (its teacher, its recipe) is kept."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    casts = []
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype != np.float32 or array.size < least:
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(array.astype(np.float16), f"{name}.float16"))
        casts.append(helper.make_node("Cast", [f"{name}.float16"], [name], to=TensorProto.FLOAT,
                                      name=f"{name}.to_float32"))
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    onnx.save(model, str(tmp))
    tmp.replace(out)
    return out
