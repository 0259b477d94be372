"""The learned inpainters: networks, training, export, the shipped model on real faces, and the stream's reuse."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from engines import Device
from streamer.inpaint.learned import DEFAULT_MODEL, LearnedInpaintConfig, LearnedInpainter
from streamer.inpaint.nets import ARCHITECTURES, InpaintingNet, load_net
from tests.conftest import need_shared, run_cli


@pytest.fixture(scope="module")
def cpu():
    return Device("cpu")


@pytest.fixture(scope="module")
def bank(face_bank):
    return face_bank


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_hidden_pixels_never_reach_the_output_and_camera_pixels_are_kept(arch):
    torch.manual_seed(0)
    net = InpaintingNet(arch, base=8, size=64).eval()
    image = torch.rand(2, 3, 64, 64)
    hole = torch.zeros(2, 1, 64, 64)
    hole[:, :, 36:60, 12:52] = 1
    other = image.clone()
    other[:, :, 36:60, 12:52] = torch.rand(2, 3, 24, 40)  # different occluder pixels, same hole
    with torch.no_grad():
        a, b = net(image, hole), net(other, hole)
    assert torch.allclose(a, b, atol=1e-6)  # whatever hid the face does not leak into the reconstruction
    assert torch.equal(a * (1 - hole), image * (1 - hole))  # outside the hole: the camera's own pixels
    assert a.min() >= 0 and a.max() <= 1


@pytest.mark.parametrize("upsample", ["nearest", "bilinear"])
def test_onnx_export_matches_torch_at_every_batch_size_and_reads_back(tmp_path, upsample):
    from streamer.inpaint.export import export_onnx, parity

    torch.manual_seed(1)
    net = InpaintingNet("pconv_unet", base=8, size=64, upsample=upsample)
    with torch.no_grad():  # normalisations of its own, as a trained net has (fresh ones export folded away)
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                for value in (module.weight, module.bias, module.running_mean, module.running_var):
                    value.uniform_(0.5, 1.5)
    path = export_onnx(net.eval(), tmp_path / "net.onnx")
    assert parity(net, path, batches=(1, 3, 7)) < 1e-4
    back, _ = load_net(path)  # checked against ONNX Runtime inside: the decoder's upsampling read back too
    assert back.upsample == upsample
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), back.state_dict().values()))


def test_the_grid_measure_sees_an_8px_block_texture_on_real_faces(bank):
    """The checker texture a nearest-upsampling decoder leaves: real faces score about 1, blocks far more."""
    from streamer.datagen.face_bank import FaceBank
    from streamer.eval.inpainter import grid_contrast

    faces = np.stack([cv2.resize(f.image(), (128, 128), interpolation=cv2.INTER_AREA)
                      for f in FaceBank(bank).faces[:16]])
    holes = np.zeros(faces.shape[:3], bool)
    holes[:, 64:120, 24:104] = True  # the lower face, as a mask hides it
    small = [cv2.resize(f, (16, 16), interpolation=cv2.INTER_AREA) for f in faces]
    blocks = np.stack([cv2.resize(f, (128, 128), interpolation=cv2.INTER_NEAREST) for f in small])  # 8 px blocks
    smooth = np.stack([cv2.resize(f, (128, 128), interpolation=cv2.INTER_LINEAR) for f in small])
    assert grid_contrast(faces, holes) < 1.2 and grid_contrast(smooth, holes) < 1.2
    assert grid_contrast(blocks, holes) > 2.0
    assert np.isnan(grid_contrast(faces, np.zeros_like(holes)))  # no hole, no figure


def test_the_detail_measure_sees_a_blurred_fill_on_real_faces(bank):
    """The blur an L1-trained fill leaves: the real face itself scores 1, the same face blurred in the hole less."""
    from streamer.datagen.face_bank import FaceBank
    from streamer.eval.inpainter import hole_detail

    faces = np.stack([cv2.resize(f.image(), (128, 128), interpolation=cv2.INTER_AREA)
                      for f in FaceBank(bank).faces[:16]])
    holes = np.zeros(faces.shape[:3], bool)
    holes[:, 64:120, 24:104] = True
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 3) for f in faces])
    assert hole_detail(faces, faces, holes) == pytest.approx(1.0)
    assert hole_detail(blurred, faces, holes) < 0.7  # measured 0.57 (the bank's faces are soft already)
    assert np.isnan(hole_detail(faces, faces, np.zeros_like(holes)))


def test_embedder_rebuilt_in_torch_matches_onnx_runtime():
    import onnxruntime

    from engines.onnx_torch import OnnxConvNet

    model = need_shared("models", "mobilefacenet_128d.onnx")
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 112, 112)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    expected = np.concatenate([session.run(None, {"input": x[i:i + 1]})[0] for i in range(2)])
    with torch.no_grad():
        got = OnnxConvNet(model)(torch.from_numpy(x)).numpy()
    assert np.abs(got - expected).max() < 1e-4


def test_training_cli_writes_checkpoints_grids_and_resumes(bank, tmp_path):
    out = tmp_path / "run"
    args = ["train", "inpainter", "--bank", str(bank), "--occluders", str(need_shared("data", "occluders")),
            "--out", str(out), "--arch", "pconv_unet", "--base", "8", "--size", "64", "--batch", "4",
            "--limit", "8", "--workers", "0", "--log-every", "1",
            "--identity-model", str(need_shared("models", "mobilefacenet_128d.onnx"))]
    # Nearest, not the default: what the run was started with must carry through --resume and --init.
    result = run_cli(*args, "--epochs", "1", "--upsample", "nearest", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "epoch 1/1: val hole L1" in result.stdout and "identity" in result.stdout
    assert "nearest upsampling" in result.stdout
    assert (out / "samples" / "epoch_001.png").is_file() and (out / "best.pt").is_file()
    grid = cv2.imread(str(out / "samples" / "epoch_001.png"))
    assert grid.shape[0] == 3 * 64  # occluded | reconstruction | original
    result = run_cli(*args, "--epochs", "2", "--resume", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resumed" in result.stdout and "epoch 2/2" in result.stdout and "epoch 1/" not in result.stdout
    # A trained run is never started over by mistake.
    before = (out / "last.pt").read_bytes()
    result = run_cli(*args, "--epochs", "1", timeout=300)
    assert result.returncode == 2 and result.stderr.strip().startswith(f"error: --out: {out} holds a trained")
    assert (out / "last.pt").read_bytes() == before
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    net, meta = load_net(out / "last.pt")
    assert net.arch == "pconv_unet" and meta["epoch"] == 2
    assert net.upsample == "nearest"  # resumed as it was started, without being told again
    result = run_cli(*args, "--epochs", "3", "--resume", "--upsample", "bilinear")
    assert result.returncode == 2 and result.stderr.startswith("error: --upsample:") and "nearest" in result.stderr
    # A fine-tuning keeps its start's decoder unless told otherwise (v1's GPU recipe and v2 rely on it).
    result = run_cli(*args, "--epochs", "1", "--lr", "1e-7", "--init", str(out / "last.pt"), "--out",
                     str(tmp_path / "tuned"), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "nearest upsampling" in result.stdout and load_net(tmp_path / "tuned" / "best.pt")[0].upsample == "nearest"
    # A checkpoint of another architecture is refused by name.
    other = [a if a != "pconv_unet" else "dual_encoder" for a in args]
    result = run_cli(*other[:-2], "--out", str(tmp_path / "other"), "--epochs", "1", "--init", str(out / "last.pt"))
    assert result.returncode == 2 and result.stderr.startswith("error: --init") and "pconv_unet" in result.stderr


def _bank_of(folder, faces, out):
    """A bank holding ``faces`` (records of ``folder``'s faces.json) of ``folder``'s crops."""
    meta = json.loads((folder / "faces.json").read_text())
    out.mkdir()
    (out / "faces.json").write_text(json.dumps({**meta, "faces": faces}))
    for split in ("train", "val", "test"):
        (out / split).symlink_to(folder / split)
    return out


def test_several_banks_give_their_faces_in_turn_and_a_folder_that_is_none_is_named(bank, tmp_path):
    from streamer.datagen.face_bank import train_and_val
    from streamer.errors import ConfigError

    faces = json.loads((bank / "faces.json").read_text())["faces"]
    first, second = _bank_of(bank, faces[:20], tmp_path / "a"), _bank_of(bank, faces[20:], tmp_path / "b")
    train, val = train_and_val([first, second], "--bank", limit=4, interleave=True)
    assert {f.path.parents[1] for f in train} == {first, second}  # a --limit takes from every bank
    assert {f.path.parents[1] for f in val[:2]} == {first, second}
    with pytest.raises(ConfigError, match=f"--bank: {tmp_path / 'none'} is not a face bank"):
        train_and_val([first, tmp_path / "none"], "--bank")


def test_fine_tunes_the_shipped_onnx_on_several_banks_without_the_excluded_people(bank, tmp_path):
    faces = json.loads((bank / "faces.json").read_text())["faces"]
    first, second = _bank_of(bank, faces[:20], tmp_path / "a"), _bank_of(bank, faces[20:], tmp_path / "b")
    excluded = [f for f in faces[20:] if f["split"] == "train"][:4]
    like = _bank_of(bank, excluded, tmp_path / "like")
    mobilefacenet = str(need_shared("models", "mobilefacenet_128d.onnx"))
    without_judge = ["train", "inpainter", "--bank", str(first), str(second), "--occluders",
                     str(need_shared("data", "occluders")), "--batch", "4", "--limit", "8", "--workers", "0",
                     "--epochs", "1", "--lr", "1e-7"]
    args = [*without_judge, "--identity-model", mobilefacenet]
    result = run_cli(*args, "--out", str(tmp_path / "run"), "--exclude-like", str(like), "--init", str(DEFAULT_MODEL),
                     timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"starting from the weights of {DEFAULT_MODEL}" in result.stdout and "(2 banks)" in result.stdout
    assert f"{load_net(DEFAULT_MODEL)[0].upsample} upsampling" in result.stdout  # the shipped net's own decoder
    dropped = int(result.stdout.split("--exclude-like: ")[1].split()[0])
    assert dropped >= len(excluded)  # the same faces at least (other photos of those people too, if any)
    # Two steps at a tiny rate: the shipped network's own reconstructions, which give back identity (a network
    # that did not read the ONNX's weights back would make noise of the hole).
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history[0]["val_identity_reconstructed"] > history[0]["val_identity_occluded"] + 0.05, history
    # Another model's ONNX is refused by name, and --exclude-like without a judge.
    result = run_cli(*args, "--out", str(tmp_path / "other"), "--init", mobilefacenet)
    assert result.returncode == 2 and result.stderr.startswith("error: --init:") and "not an inpainter" in result.stderr
    result = run_cli(*without_judge, "--out", str(tmp_path / "third"), "--exclude-like", str(like))
    assert result.returncode == 2 and result.stderr.startswith("error: --exclude-like: needs --identity-model")
    # An adversarial weight for a run without the adversarial term, or a weight that is not one, is refused.
    for weight, gan in (("0.1", "auto"), ("nan", "on"), ("-1", "on")):
        result = run_cli(*without_judge, "--out", str(tmp_path / "fourth"), "--gan", gan,
                         "--adversarial-weight", weight)
        assert result.returncode == 2 and result.stderr.startswith("error: --adversarial-weight:"), result.stderr


def _faces_with_masks(bank_folder, count: int = 16):
    """Real held-out faces at 112 px with a lower-face mask hole, as a face mask makes."""
    from streamer.datagen.face_bank import FaceBank

    faces = FaceBank(bank_folder).faces[:count]
    crops = np.stack([cv2.resize(f.image(), (112, 112), interpolation=cv2.INTER_AREA) for f in faces])
    masks = np.zeros((len(crops), 112, 112), bool)
    cv2.ellipse(masks[0].view(np.uint8), (56, 92), (34, 26), 0, 0, 360, 1, -1)
    masks[:] = masks[0]
    occluded = crops.copy()
    occluded[masks] = (90, 160, 200)  # a flat light-blue surgical mask
    return crops, occluded, masks


def test_shipped_inpainter_rebuilds_real_faces_better_than_opencv(bank, cpu):
    from streamer.inpaint.opencv import OpenCVInpaintConfig, OpenCVInpainter

    crops, occluded, masks = _faces_with_masks(bank)
    learned = LearnedInpainter(LearnedInpaintConfig(), cpu)
    assert DEFAULT_MODEL.name in learned.description and "onnxruntime" in learned.description
    ours = learned.inpaint(occluded, masks)
    telea = OpenCVInpainter(OpenCVInpaintConfig(), cpu).inpaint(occluded, masks)
    grown = cv2.dilate(masks[0].astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert np.array_equal(ours[:, ~grown], occluded[:, ~grown])  # only the (grown) hole is touched
    error = {name: np.abs(out.astype(int) - crops.astype(int))[:, masks[0]].mean() for name, out in
             (("learned", ours), ("telea", telea))}
    assert error["learned"] < 0.85 * error["telea"], error


def test_shipped_inpainter_leaves_no_checker_grid_in_a_mask_hole(bank, cpu):
    """v1's nearest-upsampling decoder left an 8 px checker texture in large holes (8 px of its 128 are 7 of these
    112 px crops): 1.19 here, the faces themselves 1.03. The shipped v3's bilinear decoder: 1.11."""
    from streamer.eval.inpainter import grid_contrast

    crops, occluded, masks = _faces_with_masks(bank, count=64)
    ours = LearnedInpainter(LearnedInpaintConfig(), cpu).inpaint(occluded, masks)
    assert len(crops) >= 32 and grid_contrast(crops, masks, period=7) < 1.1
    assert grid_contrast(ours, masks, period=7) < 1.15


def test_a_face_seen_in_grey_gets_a_grey_fill_and_a_colour_face_keeps_its_colour(bank, cpu):
    """A night-time infrared camera sees in grey; the network alone tints the fill (purple lips, green cheeks; on
    64 held-out photos of v1's bank a spread of 7.6 grey levels between channels on average, up to 45)."""
    from streamer.inpaint.learned import seen_in_grey

    crops, occluded, masks = _faces_with_masks(bank, count=64)
    grey = np.repeat(np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2GRAY) for c in crops])[..., None], 3, axis=-1)
    grey_occluded = np.where(masks[..., None], occluded, grey)  # the mask keeps its colour: it is cut out anyway
    noisy = np.clip(grey + np.random.default_rng(0).normal(0, 3, grey.shape), 0, 255).astype(np.uint8)
    assert seen_in_grey(grey_occluded, masks).all() and seen_in_grey(noisy, masks).all()
    assert not seen_in_grey(occluded, masks).any()  # every colour photo of the bank
    inpainter = LearnedInpainter(LearnedInpaintConfig(), cpu)
    filled = inpainter.inpaint(grey_occluded, masks).astype(int)
    assert (filled.max(axis=-1) - filled.min(axis=-1))[masks].max() == 0
    coloured = inpainter.inpaint(occluded, masks).astype(int)
    assert (coloured.max(axis=-1) - coloured.min(axis=-1))[masks].mean() > 10


@pytest.mark.shared_models
def test_shipped_inpainter_wins_back_identity_lost_to_a_mask(bank, cpu):
    from streamer.embed.arcface import ArcFaceConfig, ArcFaceEmbedder

    crops, occluded, masks = _faces_with_masks(bank)
    embedder = ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=need_shared("models", "mobilefacenet_128d.onnx")),
                               cpu)
    reference = embedder.embed(crops)
    restored = LearnedInpainter(LearnedInpaintConfig(), cpu).inpaint(occluded, masks)
    before = (embedder.embed(occluded) * reference).sum(1).mean()
    after = (embedder.embed(restored) * reference).sum(1).mean()
    assert after > before + 0.1, (before, after)


def test_bad_inpainter_models_are_named(tmp_path, cpu):
    from streamer.errors import ModelError

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="broken.onnx"):
        LearnedInpainter(LearnedInpaintConfig(model=broken), cpu)
    text = tmp_path / "weights.txt"
    text.write_text("")
    with pytest.raises(ValueError, match="expected an .onnx export or a .pt checkpoint"):
        LearnedInpaintConfig(model=text)


def test_torch_checkpoint_and_onnx_export_agree_in_the_stage(tmp_path, cpu):
    from streamer.inpaint.export import export_onnx

    torch.manual_seed(2)
    net = InpaintingNet("pconv_unet", base=8, size=64).eval()
    checkpoint = tmp_path / "net.pt"
    torch.save(net.checkpoint(), checkpoint)
    onnx_path = export_onnx(net, tmp_path / "net.onnx")
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (3, 112, 112, 3), np.uint8)
    masks = np.zeros((3, 112, 112), bool)
    masks[:, 60:100, 20:90] = True
    a = LearnedInpainter(LearnedInpaintConfig(model=checkpoint, cuda_graphs=False), cpu).inpaint(crops, masks)
    b = LearnedInpainter(LearnedInpaintConfig(model=onnx_path), cpu).inpaint(crops, masks)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.mark.needs_cuda
def test_torch_runtime_with_cuda_graphs_matches_eager_on_gpu(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (none here)")
    from engines import select_device

    gpu = select_device("cuda")
    net = InpaintingNet("pconv_unet", base=8, size=64).eval()
    checkpoint = tmp_path / "net.pt"
    torch.save(net.checkpoint(), checkpoint)
    crops = np.random.default_rng(0).integers(0, 255, (5, 112, 112, 3), np.uint8)
    masks = np.zeros((5, 112, 112), bool)
    masks[:, 60:100, 20:90] = True
    eager = LearnedInpainter(LearnedInpaintConfig(model=checkpoint, fp16=False, cuda_graphs=False), gpu)
    graphs = LearnedInpainter(LearnedInpaintConfig(model=checkpoint, fp16=True, cuda_graphs=True), gpu)
    for batch in (1, 3, 5):  # buckets 1, 4 (padded) and 8 (padded)
        diff = eager.inpaint(crops[:batch], masks[:batch]).astype(int) - graphs.inpaint(crops[:batch], masks[:batch])
        assert np.abs(diff).max() <= 3


def test_reconstructions_are_reused_while_the_occlusion_holds_still():
    from streamer.inpaint.reuse import ReconstructionCache
    from streamer.records import AlignedCrop, Face, Occlusion

    cache = ReconstructionCache(every_frames=3)

    def face(mask, track=7, classes=("face_mask",)):
        crop = AlignedCrop(np.zeros((32, 32, 3), np.uint8), np.eye(2, 3, dtype=np.float32))
        f = Face(box=np.zeros(4, np.float32), score=1.0, landmarks=np.zeros((5, 2), np.float32), track_id=track,
                 crop=crop)
        f.occlusion = Occlusion(mask, classes, float(mask.mean()))
        return f

    mask = np.zeros((32, 32), bool)
    mask[16:30, 4:28] = True
    first = face(mask)
    assert cache.lookup("cam", 0, first) is None
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # as the inpainter grows it
    first.reconstruction = np.where(grown[..., None], 200, 0).astype(np.uint8)
    cache.store("cam", 0, first)
    again = cache.lookup("cam", 1, face(mask))
    assert again is not None and (again[grown] == 200).all() and (again[~grown] == 0).all()
    moved = np.roll(mask, 6, axis=1)
    assert cache.lookup("cam", 2, face(moved)) is None  # the occluder moved: inpaint afresh
    assert cache.lookup("cam", 2, face(mask, classes=("hand",))) is None  # another occluder
    assert cache.lookup("cam", 3, face(mask)) is None  # every 3 frames at most
    assert cache.lookup("cam", 1, face(mask, track=-1)) is None  # tentative tracks are not reused
    assert cache.lookup("other", 1, face(mask)) is None  # per stream
    later = face(mask, track=8)
    later.reconstruction = np.zeros((32, 32, 3), np.uint8)
    cache.store("cam", 100, later)
    assert len(cache) == 2
    cache.forget_track("cam", 7)  # track 7 ended
    assert len(cache) == 1 and cache.lookup("cam", 101, face(mask)) is None
    cache.forget_stream("cam")  # the camera went down
    assert len(cache) == 0


@pytest.mark.needs_cuda
def test_tensorrt_engine_matches_onnx_runtime(tmp_path):
    from engines.tensorrt_engine import tensorrt_status

    available, why = tensorrt_status()
    if not available or not torch.cuda.is_available():
        pytest.skip(f"needs tensorrt and a CUDA GPU: {why if not available else 'no CUDA GPU'}")
    from engines import select_device
    from streamer.inpaint.export import export_onnx

    gpu = select_device("cuda")
    onnx_path = export_onnx(InpaintingNet("pconv_unet", base=8, size=64).eval(), tmp_path / "net.onnx")
    crops = np.random.default_rng(0).integers(0, 255, (7, 112, 112, 3), np.uint8)
    masks = np.zeros((7, 112, 112), bool)
    masks[:, 60:100, 20:90] = True
    reference = LearnedInpainter(LearnedInpaintConfig(model=onnx_path, runtime="onnxruntime"), Device("cpu"))
    engine = LearnedInpainter(LearnedInpaintConfig(model=onnx_path, runtime="tensorrt", max_batch=8), gpu)
    assert "tensorrt" in engine.description
    for batch in (1, 3, 7):  # inside the 1..8 profile
        expected = reference.inpaint(crops[:batch], masks[:batch]).astype(int)
        assert np.abs(expected - engine.inpaint(crops[:batch], masks[:batch])).max() <= 4  # FP16


def test_the_inpainter_eval_names_a_missing_model_or_embedder_in_one_line(tmp_path):
    missing = tmp_path / "none.onnx"
    result = run_cli("eval", "inpainter", "--bank", str(tmp_path), "--embedder", str(missing), "--model", str(missing))
    assert result.returncode == 2 and result.stderr.strip() == f"error: --model: not found: {missing}"
    result = run_cli("eval", "inpainter", "--bank", str(tmp_path), "--embedder", str(missing),
                     "--model", str(DEFAULT_MODEL))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: --embedder: not found: {missing} (an ArcFace-type .onnx, or dlib)"


def test_the_inpainter_eval_judges_by_an_embedder_it_was_not_trained_against(bank, tmp_path):
    """dlib's descriptor as the judge: the shipped inpainter was trained against MobileFaceNet only."""
    figures = tmp_path / "figures.json"
    copy = tmp_path / "copy" / DEFAULT_MODEL.name  # another run's export of the same name: both are shown
    copy.parent.mkdir()
    copy.write_bytes(DEFAULT_MODEL.read_bytes())
    result = run_cli("eval", "inpainter", "--bank", str(bank), "--occluders", str(need_shared("data", "occluders")),
                     "--embedder", "dlib", "--model", str(DEFAULT_MODEL), "--model", str(copy), "--json", str(figures),
                     timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    shipped, copied = f"{DEFAULT_MODEL.parent.name}/{DEFAULT_MODEL.name}", f"copy/{DEFAULT_MODEL.name}"
    assert f"| {shipped} |" in result.stdout and f"| {copied} |" in result.stdout
    rows = {r["name"]: r for r in json.loads(figures.read_text())}
    occluded, ours = rows["occluded input (no inpainting)"], rows[shipped]
    assert ours["identity"] > occluded["identity"] and ours["psnr_hole"] > occluded["psnr_hole"] + 3, rows
    assert ours["psnr_hole"] == rows[copied]["psnr_hole"]
    assert 1.0 <= ours["grid"] < 3 and "8 px grid" in result.stdout  # measured (its level: the stage's test above)
    assert 0.3 < ours["detail"] < 0.9 and "detail" in result.stdout  # a fill blurrier than the face (measured 0.65)
