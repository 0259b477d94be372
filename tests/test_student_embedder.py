"""The mask-robust student embedder: training without identity labels, its ONNX export, and the stream's use."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from engines import Device
from streamer.embed.arcface import ArcFaceConfig, ArcFaceEmbedder
from streamer.embed.student import teacher_of
from streamer.errors import ModelError
from tests.conftest import need_shared, run_cli


@pytest.fixture(scope="module")
def teacher():
    return need_shared("models", "mobilefacenet_128d.onnx")


@pytest.fixture(scope="module")
def trained(face_bank, teacher, tmp_path_factory):
    """A student trained for one short epoch through the CLI, then resumed for a second."""
    out = tmp_path_factory.mktemp("student")
    args = ["train", "embedder", "--teacher", str(teacher), "--faces", str(face_bank), "--occluders",
            str(need_shared("data", "occluders")), "--out", str(out), "--batch", "4", "--limit", "8",
            "--workers", "0", "--log-every", "1"]
    first = run_cli(*args, "--epochs", "1", timeout=300)
    again = run_cli(*args, "--epochs", "1", timeout=60)
    resumed = run_cli(*args, "--epochs", "2", "--resume", timeout=300)
    return out, first, again, resumed


def test_training_writes_a_student_of_its_teacher_and_resumes(trained, teacher):
    out, first, again, resumed = trained
    assert first.returncode == 0, first.stderr[-2000:]
    assert "validation cosine to the teacher's clean embedding" in first.stdout
    assert "ONNX Runtime vs torch" in first.stdout
    from streamer.embed.student import fingerprint

    assert teacher_of(out / "student.onnx") == fingerprint(teacher)
    # Nothing trained is overwritten without --resume.
    assert again.returncode == 2 and again.stderr.startswith("error: --out") and "--resume" in again.stderr
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed" in resumed.stdout
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2]
    # A run is continued with the loss it was trained with, or not at all.
    command = resumed.args[3:]  # [python, -m, streamer, ARGS...]
    other_loss = run_cli(*command, "--contrast", "0.1", timeout=300)
    assert other_loss.returncode == 2 and other_loss.stderr.startswith("error: --resume:"), other_loss.stderr[-500:]
    assert "--contrast 0" in other_loss.stderr and len(other_loss.stderr.strip().splitlines()) == 1
    other_share = run_cli(*command, "--frozen-share", "0.5", timeout=300)
    assert other_share.returncode == 2 and other_share.stderr.startswith("error: --resume:"), other_share.stderr[-500:]
    assert "--frozen-share 0" in other_share.stderr and len(other_share.stderr.strip().splitlines()) == 1
    other_data = run_cli(*command, "--misalign", "0.5", timeout=300)
    assert other_data.returncode == 2 and other_data.stderr.startswith("error: --resume:"), other_data.stderr[-500:]
    assert "--misalign 0" in other_data.stderr and len(other_data.stderr.strip().splitlines()) == 1


def test_a_new_run_can_start_from_a_trained_student_of_the_same_teacher(trained, face_bank, teacher, tmp_path):
    """--init: the run starts with the student's weights (torch and ONNX Runtime agree), records which student it
    started from, and refuses in one line a file that is not a student of its teacher, or a resumed run."""
    import onnxruntime as ort

    from streamer.embed.student import RECIPE_KEY, fingerprint
    from streamer.train.embedder import EmbedderTraining, _Run
    from streamer.train.teachers import embed

    out, *_ = trained
    student = out / "student.onnx"
    spec = EmbedderTraining(teacher=teacher, faces=[face_bank], out=tmp_path / "unused", init=student,
                            occluders=need_shared("data", "occluders"), limit=8, batch=4, workers=0)
    run = _Run(spec, progress=lambda line: None)
    faces = torch.rand(1, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    session = ort.InferenceSession(str(student), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: run.source.input(faces).numpy()})[0]
    with torch.no_grad():
        started = embed(run.source, run.student.eval(), faces).numpy()
        teachers = embed(run.source, run.teacher, faces).numpy()
    assert np.abs(started - expected / np.linalg.norm(expected)).max() < 1e-5
    assert np.abs(teachers - started).max() > 1e-3  # the student is not its teacher: the test tells them apart

    args = ["train", "embedder", "--teacher", str(teacher), "--faces", str(face_bank), "--occluders",
            str(need_shared("data", "occluders")), "--batch", "4", "--limit", "8", "--workers", "0", "--epochs", "1"]
    result = run_cli(*args, "--out", str(tmp_path / "run"), "--init", str(student), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    import onnx

    metadata = {p.key: p.value for p in onnx.load(str(tmp_path / "run" / "student.onnx")).metadata_props}
    assert json.loads(metadata[RECIPE_KEY])["init"] == {"file": "student.onnx", "sha256_12": fingerprint(student)}
    for init, flags, says in ((teacher, [], "is not a student embedder"),
                              (student, ["--resume"], "a resumed run goes on from its own last.pt")):
        refused = run_cli(*args, "--out", str(tmp_path / "other"), "--init", str(init), *flags, timeout=120)
        assert refused.returncode == 2 and refused.stderr.startswith("error: --init:"), refused.stderr[-500:]
        assert says in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def test_the_student_learns_to_map_occluded_faces_to_the_teachers_clean_embedding(face_bank, teacher, tmp_path):
    """A handful of steps on one batch move the student's occluded embedding towards the teacher's clean
    one (the loss falls), while the clean embedding stays where the teacher put it."""
    from streamer.datagen.occluders import OccluderLibrary
    from streamer.train.embedder import EmbedderTraining, _Run

    spec = EmbedderTraining(teacher=teacher, faces=[face_bank], out=tmp_path,
                            occluders=need_shared("data", "occluders"), limit=8, batch=8, lr=1e-4, workers=0)
    run = _Run(spec, progress=lambda line: None)
    assert isinstance(run.train_set.library, OccluderLibrary)
    seen, clean, faces = (torch.stack(t) if isinstance(t[0], torch.Tensor) else torch.tensor(t)
                          for t in zip(*[run.train_set[i] for i in range(8)]))
    before = run.loss(seen, clean, faces)
    for _ in range(6):
        terms = run.loss(seen, clean, faces)
        run.optimizer.zero_grad()
        terms["loss"].backward()
        run.optimizer.step()
    after = run.loss(seen, clean, faces)
    assert float(after["seen"].detach()) > float(before["seen"].detach()) + 0.02
    assert float(after["clean"].detach()) > 0.95


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_frozen_share_keeps_the_teachers_first_layers_and_trains_the_rest(face_bank, teacher, tmp_path, share):
    """--frozen-share 0 (the default) moves the first layer too; 0.5 leaves the first half as the teacher's."""
    from streamer.train.embedder import EmbedderTraining, _Run

    spec = EmbedderTraining(teacher=teacher, faces=[face_bank], out=tmp_path,
                            occluders=need_shared("data", "occluders"), limit=8, batch=4, lr=1e-3, workers=0,
                            frozen_share=share)
    run = _Run(spec, progress=lambda line: None)
    weights = list(run.student.parameters())
    before = [w.detach().clone() for w in weights]
    seen, clean, faces = (torch.stack(t) if isinstance(t[0], torch.Tensor) else torch.tensor(t)
                          for t in zip(*[run.train_set[i] for i in range(4)]))
    run.optimizer.zero_grad()
    run.loss(seen, clean, faces)["loss"].backward()
    run.optimizer.step()
    trained = [w.requires_grad for w in weights]
    moved = [not torch.equal(b, w.detach()) for b, w in zip(before, weights)]
    trainable = len(run.source.network(trainable=True).weights_in_use_order())  # before any freezing
    assert sum(trained) == trainable - round(share * trainable)
    assert moved[0] is (share == 0.0)  # the first convolution
    assert not any(m for m, t in zip(moved, trained) if not t)  # a frozen weight stays the teacher's
    assert sum(moved) >= 0.9 * sum(trained)


def test_a_checkpoint_from_before_frozen_share_was_recorded_resumes_only_with_its_share(face_bank, teacher, tmp_path):
    """Checkpoints written before the share was stored: another share is told apart by the weights it trained."""
    from streamer.errors import ConfigError
    from streamer.train.embedder import EmbedderTraining, _Run

    def run(share):
        return _Run(EmbedderTraining(teacher=teacher, faces=[face_bank], out=tmp_path, limit=8, batch=4,
                                     workers=0, frozen_share=share), progress=lambda line: None)

    path = run(0.5).save("last.pt")
    state = torch.load(str(path), weights_only=True)
    del state["frozen_share"]
    torch.save(state, str(path))
    with pytest.raises(ConfigError, match="another --frozen-share"):
        run(0.0).restore(path)
    run(0.5).restore(path)  # its own share still resumes


def test_the_contrast_term_ranks_an_occluded_face_nearest_its_own_target(face_bank, teacher, tmp_path):
    """With --contrast, a few steps lower the cross-entropy of each occluded face's own target among every
    training face's; faces the judge takes for the same person are not pushed away."""
    from streamer.train.embedder import EmbedderTraining, _Run

    spec = EmbedderTraining(teacher=teacher, faces=[face_bank], out=tmp_path,
                            occluders=need_shared("data", "occluders"), limit=12, batch=8, lr=1e-4, workers=0,
                            contrast=0.5)
    run = _Run(spec, progress=lambda line: None)
    seen, clean, faces = (torch.stack(t) if isinstance(t[0], torch.Tensor) else torch.tensor(t)
                          for t in zip(*[run.train_set[i] for i in range(8)]))
    before = float(run.loss(seen, clean, faces)["contrast"].detach())
    for _ in range(6):
        terms = run.loss(seen, clean, faces)
        run.optimizer.zero_grad()
        terms["loss"].backward()
        run.optimizer.step()
    assert float(run.loss(seen, clean, faces)["contrast"].detach()) < before - 0.05
    # Another training face lying where the first face's target lies: one the judge takes for the same person (its
    # cosine just at the judge's threshold) adds nothing to the first face's term; one just under it raises it.
    with torch.no_grad():
        first = faces[:1]
        embeddings = run.targets[first]
        alone = float(run.contrast(embeddings, first))
        judged = run.alike_judged[first][0]
        noise = torch.randn(len(judged), generator=torch.Generator().manual_seed(0))
        other = torch.nn.functional.normalize(noise - (noise @ judged) * judged, dim=0)  # at right angles to it
        at = run.judge.same_person
        others, alike_judged = run.others, run.alike_judged
        for cosine, raises in ((at + 1e-4, False), (at - 1e-2, True)):
            run.others = torch.cat([others, others[first]])
            run.alike_judged = torch.cat([alike_judged, (cosine * judged + (1 - cosine ** 2) ** 0.5 * other)[None]])
            with_it = float(run.contrast(embeddings, first))
            assert (with_it > alone + 0.01) == raises, (cosine, alone, with_it)


def test_the_stream_embeds_with_the_student_and_keeps_the_teachers_gallery(trained, teacher):
    out, *_ = trained
    cpu = Device("cpu")
    plain = ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=teacher), cpu)
    with_student = ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=teacher, student=out / "student.onnx"), cpu)
    assert with_student.model_id == plain.model_id  # one gallery: the teacher's
    assert with_student.student is not None and "student" in with_student.description
    faces = np.random.default_rng(0).integers(0, 255, (2, 112, 112, 3), dtype=np.uint8)
    assert np.allclose(with_student.embed(faces), plain.embed(faces))  # enrolment: the teacher's embedding
    probes = with_student.student.embed(faces)
    assert probes.shape == (2, 128) and not np.allclose(probes, plain.embed(faces))


def test_the_student_embeds_as_its_teacher_is_configured(trained, teacher):
    from types import SimpleNamespace

    from streamer.cli import _eval_embedders
    from streamer.config import parse_config

    out, *_ = trained
    cpu = Device("cpu")
    for mirror in (False, True):
        embedder = ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=teacher, student=out / "student.onnx",
                                                 mirror=mirror), cpu)
        assert embedder.mirror is mirror and embedder.student.mirror is mirror
    # `streamer eval identity --student` on the config's own embedder measures it as configured, single view here.
    config = parse_config({"embedder": {"backend": "arcface", "model": str(teacher), "mirror": False}})
    [(_, embedder, _, _)] = _eval_embedders(SimpleNamespace(embedder=[], student=str(out / "student.onnx")),
                                            config, None, cpu)
    assert not embedder.mirror and embedder.student is not None and "+mirror" not in embedder.model_id


def test_a_student_of_another_model_is_refused_by_name(trained, teacher):
    out, *_ = trained
    cpu = Device("cpu")
    with pytest.raises(ModelError, match=r"embedder\.student: .*student\.onnx was trained from another model"):
        ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=out / "student.onnx", student=out / "student.onnx"), cpu)
    with pytest.raises(ModelError, match=r"embedder\.student: .*mobilefacenet_128d\.onnx is not a student"):
        ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=teacher, student=teacher), cpu)


def test_bad_teachers_and_face_folders_get_one_line(face_bank, tmp_path):
    common = ["train", "embedder", "--out", str(tmp_path / "run"), "--epochs", "1"]
    scrfd = need_shared("models", "scrfd_500m_bnkps.onnx")
    result = run_cli(*common, "--teacher", str(scrfd), "--faces", str(face_bank), timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: --teacher") and "ArcFace-layout" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    empty = tmp_path / "photos"
    empty.mkdir()
    result = run_cli(*common, "--teacher", str(need_shared("models", "mobilefacenet_128d.onnx")), "--faces",
                     str(empty), timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: --faces") and "face bank" in result.stderr
    assert not (tmp_path / "run" / "student.onnx").exists()
    teacher = str(need_shared("models", "mobilefacenet_128d.onnx"))
    result = run_cli(*common, "--teacher", teacher, "--faces", str(face_bank), "--limit", "2", "--batch", "4",
                     timeout=120)  # two faces, batches of four: not one step could be taken
    assert result.returncode == 2 and result.stderr.startswith("error: --batch"), result.stderr[-500:]
    result = run_cli(*common, "--teacher", teacher, "--faces", str(face_bank), "--exclude-like", str(empty),
                     timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: --exclude-like"), result.stderr[-500:]
    for flag, value in (("--temperature", "0"), ("--contrast", "-1"), ("--misalign", "1.5"),
                        ("--hide-occluders", "2")):
        result = run_cli(*common, "--teacher", teacher, "--faces", str(face_bank), flag, value, timeout=120)
        assert result.returncode == 2 and result.stderr.startswith(f"error: {flag}:"), result.stderr[-500:]
        assert len(result.stderr.strip().splitlines()) == 1


def test_hidden_occluders_are_one_flat_colour_the_mean_of_the_face_around_them(face_bank):
    """--hide-occluders: the same composed face, hidden and not. What differs is the occluder (and a few pixels of its
    edge), painted the mean colour of the rest; every other pixel is the face as seen."""
    from streamer.datagen.compose import ComposeSettings
    from streamer.datagen.face_bank import train_and_val
    from streamer.datagen.occluders import OccluderLibrary
    from streamer.embed.hiding import hide_occluders
    from streamer.train.embedder_data import OccludedAndClean

    faces, _ = train_and_val([face_bank], "--faces", 8)
    library = OccluderLibrary(need_shared("data", "occluders"))
    occluders_only = ComposeSettings(clean_share=0.0, degrade_share=0.0)  # no camera faults: only the occluder differs
    shown, hidden = (OccludedAndClean(faces, library, 112, seed=0, settings=occluders_only, hide_share=share)
                     for share in (0.0, 1.0))
    compared = 0
    for index in range(len(faces)):
        seen, clean, _ = shown.seen_and_clean(index, 0)
        painted, _, _ = hidden.seen_and_clean(index, 0)
        occluder = np.abs(seen.astype(int) - clean.astype(int)).max(2) > 40
        if occluder.mean() < 0.02:
            continue  # an occluder off the face: nothing hidden
        changed = (painted != seen).any(2)
        assert changed[occluder].mean() > 0.8  # the occluder is hidden ...
        colours = np.unique(painted[changed], axis=0)
        assert len(colours) == 1  # ... under one colour
        assert np.abs(colours[0] - seen[~changed].mean(0)).max() < 10  # that of the face around it (a grown edge)
        compared += 1
    assert compared >= 3
    image = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    assert hide_occluders(image, np.zeros((8, 8), bool)) is image  # nothing found: the face as seen


@pytest.fixture(scope="module")
def hiding(trained, face_bank, teacher, tmp_path_factory):
    """The trained run, copied and resumed with --hide-occluders 1."""
    import shutil

    run = tmp_path_factory.mktemp("hiding") / "run"
    shutil.copytree(trained[0], run)
    result = run_cli("train", "embedder", "--teacher", str(teacher), "--faces", str(face_bank), "--occluders",
                     str(need_shared("data", "occluders")), "--out", str(run), "--batch", "4", "--limit", "8",
                     "--workers", "0", "--epochs", "3", "--hide-occluders", "1", "--resume", timeout=300)
    return run, result


def test_a_student_taught_hidden_occluders_says_so_and_chooses_its_best_anew(hiding, trained, teacher):
    run, result = hiding
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--hide-occluders 1 from here: best.pt is chosen anew" in result.stdout
    best = torch.load(str(run / "best.pt"), map_location="cpu", weights_only=True)
    assert best["epoch"] == 3 and best["hide_occluders"] == 1.0
    history = json.loads((run / "history.json").read_text())
    assert [r.get("hide_occluders", 0.0) for r in history] == [0.0, 0.0, 1.0]  # which epochs saw hidden occluders
    cpu = Device("cpu")
    embedder = ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=teacher, student=run / "student.onnx"), cpu)
    assert embedder.student.hides_occluders and "occluders hidden" in embedder.description
    plain = ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=teacher, student=trained[0] / "student.onnx"), cpu)
    assert not plain.student.hides_occluders


def test_the_stream_and_the_eval_show_such_a_student_the_occluders_hidden(hiding, teacher):
    """A real masked photo through the stream's stages: the student describes it with the mask the segmenter found
    painted over; the eval's student path does the same, and leaves a probe with nothing found as seen."""
    import time

    from streamer.config import parse_config
    from streamer.embed.hiding import hide_occluders
    from streamer.eval.identity import Probes, probe_vectors
    from streamer.records import VideoFrame
    from streamer.stages import Stages

    run, _ = hiding
    scrfd = need_shared("models", "scrfd_2.5g_bnkps.onnx")
    config = parse_config({"detector": {"backend": "scrfd", "model": str(scrfd)},
                           "embedder": {"backend": "arcface", "model": str(teacher),
                                        "student": str(run / "student.onnx")}})
    stages = Stages.build(config, Device("cpu"))
    student = stages.embedder.student
    photo = cv2.imread(str(need_shared("data", "masked_faces", "with_mask", "0417.jpg")))
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[100:100 + photo.shape[0], 200:200 + photo.shape[1]] = photo
    results = stages.detect([VideoFrame("cam", 0, frame, None, time.time(), time.monotonic())])
    stages.analyse(results)
    face = max(results[0].faces, key=lambda f: f.box[2] - f.box[0])
    assert "face_mask" in face.occlusion.classes and face.reconstructed
    hidden = hide_occluders(face.crop.image, face.occlusion.mask)
    assert np.allclose(face.embedding, student.embed(hidden[None])[0], atol=1e-5)
    assert not np.allclose(face.embedding, student.embed(face.crop.image[None])[0], atol=1e-3)

    images = np.stack([face.crop.image, face.crop.image])
    masks = np.stack([face.occlusion.mask, face.occlusion.mask])
    probes = Probes("face_mask", ["a", "a"], np.array([True, True]), images, masks, [("face_mask",), ()], images)
    vectors = probe_vectors(stages.embedder, probes)
    assert np.allclose(vectors.student[0], face.embedding, atol=1e-5)  # hidden: the segmenter found enough
    assert np.allclose(vectors.student[1], student.embed(images[:1])[0], atol=1e-5)  # found nothing: as seen
