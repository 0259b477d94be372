"""Every model of the pipeline rebuilt in torch (engines/onnx_torch.py): the path a GPU takes where neither ONNX
Runtime's CUDA build nor TensorRT is installed. Each is checked against ONNX Runtime on the same input: the
graphs' raw outputs, and each stage's result as a user sees it (the faces found, who they are, what hides
them, the pixels put back) on real photos. The CUDA tests (FP16, CUDA graphs) run where a GPU is."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engines import Device
from tests.conftest import FACES, MODELS, ROOT, need_shared

OCCLUDER_MODEL = ROOT / "streamer" / "occlusion" / "weights" / "occluders-yolo11n-seg.onnx"
INPAINTER_MODEL = ROOT / "streamer" / "inpaint" / "weights" / "inpainter-pconv-unet-128.onnx"
CPU_ORT = Device("cpu")
CPU_TORCH = Device("cpu", onnx_runtime="torch")

# (model, the shapes fed to it, inputs in pixel units): the project's own models always, ../shared's where present.
GRAPHS = [
    (OCCLUDER_MODEL, [(1, 3, 160, 160), (6, 3, 160, 160)], False),
    (INPAINTER_MODEL, [(1, 3, 128, 128), (5, 3, 128, 128)], False),
    (MODELS / "scrfd_2.5g_bnkps.onnx", [(1, 3, 320, 320), (1, 3, 256, 448)], True),
    (MODELS / "scrfd_500m_bnkps.onnx", [(1, 3, 640, 640)], True),
    (MODELS / "mobilefacenet_128d.onnx", [(1, 3, 112, 112), (7, 3, 112, 112)], True),
]


def _feeds(session, shape, pixels: bool, rng) -> dict[str, np.ndarray]:
    feeds = {}
    for spec in session.get_inputs():
        if spec.name == "hole":
            feeds[spec.name] = (rng.random((shape[0], 1, *shape[2:])) > 0.6).astype(np.float32)
        else:
            feeds[spec.name] = (rng.random(shape, dtype=np.float32) * (255.0 if pixels else 1.0)).astype(np.float32)
    return feeds


@pytest.mark.parametrize("path,shapes,pixels", GRAPHS, ids=[g[0].stem for g in GRAPHS])
def test_each_graph_rebuilt_in_torch_gives_onnx_runtime_s_outputs(path, shapes, pixels):
    import onnxruntime
    import torch

    from engines.onnx_torch import OnnxGraph

    if not path.exists():
        need_shared("models", path.name)
    graph = OnnxGraph(path).eval()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    declared = session.get_inputs()[0].shape[0]
    rng = np.random.default_rng(0)
    for shape in shapes:
        feeds = _feeds(session, shape, pixels, rng)
        if isinstance(declared, int) and shape[0] != declared:  # ONNX Runtime takes the exported batch only
            assert graph.batch_is_free
            parts = [session.run(None, {k: v[i:i + 1] for k, v in feeds.items()}) for i in range(shape[0])]
            expected = [np.concatenate(outputs) for outputs in zip(*parts)]
        else:
            expected = session.run(None, feeds)
        with torch.inference_mode():
            for _ in range(2):  # the second call runs on the shape arithmetic the first one worked out
                got = graph(*[torch.from_numpy(feeds[name]) for name in graph.input_names])
                assert len(got) == len(expected)
                for ours, theirs in zip(got, expected):
                    assert ours.shape == theirs.shape
                    scale = float(np.abs(theirs).max()) or 1.0
                    assert np.abs(ours.numpy() - theirs).max() <= 1e-4 * scale, (path.name, shape)


@pytest.mark.parametrize("path,shapes,pixels", GRAPHS, ids=[g[0].stem for g in GRAPHS])
def test_each_graph_s_data_path_stays_on_its_device_in_its_precision(path, shapes, pixels):
    """What CUDA-graph capture needs, checked without a GPU: after the first call for a shape on the host, the
    module moved to torch's "meta" device (tensors without data: reading one on the host, or mixing it with a
    host tensor, raises) in float16 runs a batch of that shape there, every output float16. So no call copies
    from the device (a .item(), a .tolist(), a float()) and nothing falls back to float32."""
    import torch

    from engines.onnx_torch import OnnxGraph

    if not path.exists():
        need_shared("models", path.name)
    graph = OnnxGraph(path).eval()
    shape = shapes[-1]
    sizes = [(shape[0], 1, *shape[2:]) if name == "hole" else shape for name in graph.input_names]
    with torch.inference_mode():
        expected = graph(*[torch.rand(size) for size in sizes])
        graph.to("meta", torch.float16)
        got = graph(*[torch.rand(size, device="meta", dtype=torch.float16) for size in sizes])
    assert [tuple(o.shape) for o in got] == [tuple(o.shape) for o in expected]
    assert {(o.device.type, o.dtype) for o in got} == {("meta", torch.float16)}


def test_a_graph_with_an_operator_the_rebuild_lacks_is_refused_naming_file_and_operator(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from streamer.embed.arcface import ArcFaceConfig, ArcFaceEmbedder
    from streamer.errors import ModelError

    node = helper.make_node("Einsum", ["input"], ["output"], equation="nchw->nc")
    image = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 112, 112])
    embedding = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([node], "odd", [image], [embedding])
    path = tmp_path / "odd-embedder.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    with pytest.raises(ModelError, match=r"odd-embedder\.onnx on torch .*not supported by the torch rebuild: Einsum"):
        ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=path), CPU_TORCH)


def test_the_engine_section_chooses_the_runtime_and_refuses_an_unknown_one():
    from streamer.config import parse_config
    from streamer.errors import ConfigError

    engine = parse_config({"engine": {"device": "cpu", "onnx_runtime": "torch", "fp16": False}}).engine
    device = engine.select_device()
    assert (device.onnx_runtime, device.fp16, device.cuda_graphs) == ("torch", False, True)
    with pytest.raises(ConfigError, match="engine.onnx_runtime"):
        parse_config({"engine": {"onnx_runtime": "tensorrt"}})


def test_on_a_cpu_auto_keeps_onnx_runtime():
    from engines import onnx_backend

    assert onnx_backend(Device("cpu")) == "onnxruntime"
    assert onnx_backend(Device("cpu", onnx_runtime="torch")) == "torch"


def _photos(count: int) -> list[np.ndarray]:
    root = need_shared("data", "faces", "identities")
    paths = sorted(p for p in root.rglob("*") if p.suffix in (".jpg", ".png"))[:count]
    return [cv2.imread(str(p)) for p in paths]


@pytest.mark.shared_models
def test_the_stages_on_torch_find_name_and_mend_faces_as_on_onnx_runtime(cpu):
    """On real photos: the same faces and landmarks, the same embeddings (MobileFaceNet in one batch on torch,
    where ONNX Runtime takes its exported batch of 1), the same occluders, the same reconstructed pixels."""
    from streamer.align import align_face
    from streamer.detect import detect_in_photo
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
    from streamer.embed.arcface import ArcFaceConfig, ArcFaceEmbedder
    from streamer.inpaint import build_inpainter
    from streamer.inpaint.learned import LearnedInpaintConfig
    from streamer.occlusion import YoloSegConfig, build_segmenter

    detector_config = ScrfdConfig(backend="scrfd", model=MODELS / "scrfd_2.5g_bnkps.onnx", input_size=320)
    detectors = [ScrfdDetector(detector_config, d) for d in (CPU_ORT, CPU_TORCH)]
    assert "on torch" in detectors[1].description and "on onnxruntime" in detectors[0].description
    crops = []
    for image in _photos(12) + [cv2.imread(str(FACES / "two_people.jpg"))]:
        found = [detect_in_photo(d, image) for d in detectors]
        (ort_faces, _), (torch_faces, letterboxed) = found
        assert len(ort_faces) == len(torch_faces)
        assert np.abs(ort_faces.boxes - torch_faces.boxes).max(initial=0) < 0.5
        assert np.abs(ort_faces.landmarks - torch_faces.landmarks).max(initial=0) < 0.5
        crops += [align_face(letterboxed, points, 112).image for points in torch_faces.landmarks]
    assert len(crops) >= 12
    crops = np.stack(crops)

    embedder_config = ArcFaceConfig(backend="arcface", model=MODELS / "mobilefacenet_128d.onnx")
    ort_embedder, torch_embedder = (ArcFaceEmbedder(embedder_config, d) for d in (CPU_ORT, CPU_TORCH))
    assert torch_embedder._fixed_batch is None and ort_embedder._fixed_batch == 1
    cosines = (ort_embedder.embed(crops) * torch_embedder.embed(crops)).sum(axis=1)
    assert cosines.min() > 0.9999, cosines

    # What hides the faces: the shipped occluder model on real masked faces.
    masked = _masked_crops(detectors[0], 16)
    ort_seg, torch_seg = (build_segmenter(YoloSegConfig(), d) for d in (CPU_ORT, CPU_TORCH))
    for a, b in zip(ort_seg.segment(masked), torch_seg.segment(masked)):
        assert a.classes == b.classes
        union = (a.mask | b.mask).sum()
        assert union == 0 or (a.mask & b.mask).sum() / union > 0.99
    images = np.stack([c.image for c in masked])
    holes = np.stack([o.mask for o in ort_seg.segment(masked)])
    ort_paint, torch_paint = (build_inpainter(LearnedInpaintConfig(), d) for d in (CPU_ORT, CPU_TORCH))
    assert "on torch" in torch_paint.description
    difference = np.abs(ort_paint.inpaint(images, holes).astype(int) - torch_paint.inpaint(images, holes))
    assert difference.max() <= 1


def _masked_crops(detector, count: int):
    from streamer.align import align_face
    from streamer.detect import detect_in_photo

    root = need_shared("data", "masked_faces", "with_mask")
    crops = []
    for path in sorted(root.iterdir()):
        found, image = detect_in_photo(detector, cv2.imread(str(path)))
        if len(found):
            crops.append(align_face(image, found.landmarks[0], 112))
        if len(crops) == count:
            break
    return crops


@pytest.mark.needs_cuda
@pytest.mark.parametrize("path,shapes,pixels", GRAPHS, ids=[g[0].stem for g in GRAPHS])
def test_each_graph_on_cuda_in_fp16_with_cuda_graphs_matches_the_cpu(path, shapes, pixels):
    """Stated tolerances: FP16 carries about 3 significant digits, so each output is within 2% of the CPU's
    largest value, and embeddings keep a cosine of 0.999 to the CPU's."""
    import torch

    from engines.torch_engine import TorchEngine

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (none here)")
    if not path.exists():
        need_shared("models", path.name)
    gpu = Device("cuda", name=torch.cuda.get_device_name(0))
    fast = TorchEngine.from_onnx(path, gpu, fp16=True, cuda_graphs=True)
    reference = TorchEngine.from_onnx(path, CPU_TORCH)
    rng = np.random.default_rng(1)
    for shape in shapes:
        feeds = {name: (rng.random(shape, dtype=np.float32) * (255.0 if pixels else 1.0)).astype(np.float32)
                 for name in reference.input_names}
        if "hole" in feeds:
            feeds["hole"] = (rng.random((shape[0], 1, *shape[2:])) > 0.6).astype(np.float32)
        for _ in range(2):  # captured on the first call, replayed on the second
            for ours, theirs in zip(fast.run(feeds), reference.run(feeds)):
                assert ours.shape == theirs.shape, (path.name, shape)
                scale = float(np.abs(theirs).max()) or 1.0
                assert np.abs(ours - theirs).max() <= 0.02 * scale, (path.name, shape)
                if path.stem.startswith("mobilefacenet"):
                    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
                    assert cosine.min() > 0.999
