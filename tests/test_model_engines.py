"""SCRFD, ArcFace and YOLO-seg run on the engine layer with their own pre- and post-processing: the same
faces, embeddings and masks as insightface's and ultralytics' own code (imported here only, as references),
without importing either (or torch) in the stream."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.align import align_face
from streamer.errors import ModelError
from tests.conftest import FACES, ROOT, need_shared

SHIPPED_YOLO = ROOT / "streamer" / "occlusion" / "weights" / "occluders-yolo11n-seg.onnx"
SCRFD_MODELS = ("scrfd_2.5g_bnkps.onnx", "scrfd_500m_bnkps.onnx")


def _photos() -> list[Path]:
    """Real photos: several people, one of two, masked and unmasked faces from the masked-faces set."""
    test = need_shared("data", "faces", "identities", "knn_examples", "test")
    masked = need_shared("data", "masked_faces")
    return (sorted(test.iterdir()) + [FACES / "two_people.jpg"] + sorted((masked / "with_mask").iterdir())[:6]
            + sorted((masked / "without_mask").iterdir())[:3])


@pytest.fixture(scope="module")
def aligned_crops(cpu):
    """Aligned faces (112 and 224 px) of real photos, masked ones included, from SCRFD's landmarks."""
    from streamer.detect import detect_in_photo
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector

    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=need_shared("models", "scrfd_500m_bnkps.onnx"),
                                         input_size=320), cpu)
    masked = need_shared("data", "masked_faces")
    photos = sorted((masked / "with_mask").iterdir())[:30] + sorted((masked / "without_mask").iterdir())[:10]
    photos += sorted((FACES / "knn_examples" / "test").iterdir())
    crops = []
    for k, path in enumerate(photos):
        found, image = detect_in_photo(detector, cv2.imread(str(path)))
        for landmarks in found.landmarks[:2]:
            crops.append(align_face(image, landmarks, 224 if k % 5 == 0 else 112))
    return crops


# ---------------------------------------------------------------- SCRFD


def _insightface_scrfd(path: Path):
    from insightface.model_zoo import get_model

    model = get_model(str(path), providers=["CPUExecutionProvider"])
    model.prepare(ctx_id=-1, input_size=(640, 640), det_thresh=0.5, nms_thresh=0.4)
    return model


@pytest.mark.shared_models
@pytest.mark.parametrize("name", SCRFD_MODELS)
def test_scrfd_finds_the_faces_insightface_finds(cpu, name):
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector, _fitted_input

    path = need_shared("models", name)
    # insightface fills its input with any photo, however small: so does this one, unlimited
    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=path, max_upscale=1000), cpu)
    reference = _insightface_scrfd(path)
    assert detector.supports_regions == (name == "scrfd_2.5g_bnkps.onnx")  # 500m is a fixed 640x640 export
    faces = 0
    for photo in _photos():
        image = cv2.imread(str(photo))
        found = detector.detect(image)
        size = _fitted_input(image.shape, 640, 1000) if detector.supports_regions else None
        dets, points = reference.detect(image, input_size=size)
        big = dets[:, 3] - dets[:, 1] >= 20  # the detector's min_face_px
        dets, points = dets[big], points[big]
        assert len(found) == len(dets), photo.name
        assert np.abs(found.boxes - dets[:, :4]).max(initial=0) <= 1.0, photo.name
        assert np.abs(found.landmarks - points).max(initial=0) <= 1.0, photo.name
        assert np.abs(found.scores - dets[:, 4]).max(initial=0) <= 1e-3, photo.name
        faces += len(found)
    assert faces >= 12


@pytest.mark.shared_models
@pytest.mark.parametrize("name", SCRFD_MODELS)
def test_a_small_photo_is_enlarged_at_most_max_upscale_and_its_face_found_in_its_pixels(cpu, name):
    """A photo cropped tight to a face, 150 px: blown up to 640 px SCRFD finds such faces less often; it is shown at
    1.5x (to the next 32 px; in a fixed input's corner), and the face comes back in the photo's own pixels."""
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector

    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=need_shared("models", name)), cpu)
    shown = []
    candidates = detector._candidates
    detector._candidates = lambda canvas: shown.append(canvas) or candidates(canvas)
    photo = cv2.imread(str(sorted((need_shared("data", "masked_faces") / "without_mask").iterdir())[0]))
    photo = cv2.resize(photo, (150, 150 * photo.shape[0] // photo.shape[1]))
    found = detector.detect(photo)
    used = np.argwhere(shown[0].any(axis=2)).max(axis=0) + 1  # rows, columns of the input the photo fills
    assert (used <= 1.5 * np.array(photo.shape[:2]) + 32).all()  # at most a stride's rounding beyond 1.5x
    assert len(found) == 1
    x1, y1, x2, y2 = found.boxes[0]
    assert -5 <= x1 < x2 <= photo.shape[1] + 5 and -5 <= y1 < y2 <= photo.shape[0] + 5
    assert "enlarged 1.5x (to the next 32 px)" in detector.description
    # The same face where the photo fills the whole input (insightface's way): a scale gone wrong would move the box.
    filled = ScrfdDetector(ScrfdConfig(backend="scrfd", model=need_shared("models", name), max_upscale=1000), cpu)
    reference = filled.detect(photo).boxes[0]
    assert np.abs(found.boxes[0] - reference).max() <= 0.1 * (reference[3] - reference[1])


@pytest.mark.shared_models
def test_scrfd_regions_find_the_face_in_a_crop(cpu):
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
    from streamer.track.iou import iou_matrix

    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=need_shared("models", "scrfd_2.5g_bnkps.onnx")), cpu)
    image = cv2.resize(cv2.imread(str(FACES / "obama-1080p.jpg")), (1280, 720))
    full = detector.detect(image)
    assert len(full) == 1
    x1, y1, x2, y2 = full.boxes[0]
    half = max(x2 - x1, y2 - y1)
    left, top = int(max(0, (x1 + x2) / 2 - half)), int(max(0, (y1 + y2) / 2 - half))
    crop = image[top:int((y1 + y2) / 2 + half), left:int((x1 + x2) / 2 + half)]
    blank = np.zeros_like(crop)
    regions = detector.detect_regions([blank, crop, crop[::2, ::2]], [image.shape] * 3)
    assert [len(r) for r in regions] == [0, 1, 1]
    offset = np.array([left, top, left, top], np.float32)
    assert iou_matrix(regions[1].boxes + offset, full.boxes)[0, 0] > 0.9
    assert np.abs(regions[1].landmarks + offset[:2] - full.landmarks).max() < 4


class _FakeSession:
    """An ONNX Runtime stand-in that returns fixed outputs (for insightface's SCRFD as the reference)."""

    def __init__(self, outputs: list[np.ndarray]):
        from types import SimpleNamespace

        self._outputs = outputs
        self._inputs = [SimpleNamespace(name="input", shape=[1, 3, None, None])]
        self._declared = [SimpleNamespace(name=f"out{k}", shape=list(o.shape)) for k, o in enumerate(outputs)]

    def get_inputs(self):
        return self._inputs

    def get_outputs(self):
        return self._declared

    def run(self, names, feed):
        return self._outputs


@pytest.mark.parametrize("count", [6, 9, 10, 15])
@pytest.mark.parametrize("batched", [False, True])
def test_scrfd_decoding_of_every_output_layout_matches_insightface(count, batched):
    """Random score / box / keypoint maps of every SCRFD variant, decoded both ways."""
    from insightface.model_zoo.scrfd import SCRFD

    from streamer.detect.scrfd import SCRFD_LAYOUTS, decode_scrfd, nms

    layout = SCRFD_LAYOUTS[count]
    height, width = 128, 192
    rng = np.random.default_rng(count)
    outputs = []
    for widths in (1, 4, 10)[: count // layout.levels]:
        for stride in layout.strides:
            cells = (height // stride) * (width // stride) * layout.anchors
            data = rng.random((cells, widths), np.float32) * (1 if widths == 1 else 4)
            outputs.append(data[None] if batched else data)
    reference = SCRFD(session=_FakeSession(outputs))
    scores, boxes, points = reference.forward(np.zeros((height, width, 3), np.uint8), 0.9)
    order = np.argsort(-np.vstack(scores).ravel(), kind="stable")
    dets, kps = decode_scrfd(outputs, layout, (height, width), 0.9)
    assert np.array_equal(dets[:, :4], np.vstack(boxes)[order])
    assert np.array_equal(dets[:, 4], np.vstack(scores).ravel()[order])
    if layout.keypoints:
        assert np.array_equal(kps, np.vstack(points)[order])
    else:
        assert kps is None and points == []
    reference.nms_thresh = 0.4
    assert list(nms(dets, 0.4)) == list(reference.nms(dets))


# ---------------------------------------------------------------- ArcFace


@pytest.mark.shared_models
def test_arcface_embeddings_match_insightface(cpu, aligned_crops):
    from insightface.model_zoo import get_model

    from streamer.embed.arcface import ArcFaceConfig, ArcFaceEmbedder

    path = need_shared("models", "mobilefacenet_128d.onnx")
    single = ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=path, mirror=False), cpu)
    crops = np.stack([c.image for c in aligned_crops if c.image.shape[0] == 112])
    reference = get_model(str(path), providers=["CPUExecutionProvider"])
    features = np.concatenate([reference.get_feat([c]) for c in crops])
    expected = features / np.linalg.norm(features, axis=1, keepdims=True)
    got = single.embed(crops)
    assert got.shape == expected.shape and got.dtype == np.float32
    assert (got * expected).sum(axis=1).min() >= 0.9999
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    # By default a face counts with its mirror image: insightface's features of both, added.
    mirrored = ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=path), cpu)
    both = features + np.concatenate([reference.get_feat([np.ascontiguousarray(c[:, ::-1])]) for c in crops])
    got = mirrored.embed(crops)
    assert (got * (both / np.linalg.norm(both, axis=1, keepdims=True))).sum(axis=1).min() >= 0.9999
    assert (got * mirrored.embed(crops[:, :, ::-1])).sum(axis=1).min() >= 0.9999  # a face and its mirror: one vector
    assert (got * expected).sum(axis=1).max() < 0.999  # and not the single view's
    # model_id is what stored galleries refer to: the file's stem (and whether mirrored) and the first 12 hex of its
    # SHA-256. The two kinds of vectors never meet in one gallery.
    import hashlib

    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    assert single.model_id == f"arcface:mobilefacenet_128d:{digest}"
    assert mirrored.model_id == f"arcface:mobilefacenet_128d+mirror:{digest}"


# ---------------------------------------------------------------- YOLO-seg


@pytest.fixture(scope="module")
def ultralytics_yolo():
    from streamer.ultralytics_offline import import_ultralytics

    return import_ultralytics().YOLO(str(SHIPPED_YOLO), task="segment")


def _reference_masks(yolo, images: list[np.ndarray], confidence: float, monkeypatch
                     ) -> list[tuple[np.ndarray, tuple[str, ...]]]:
    """ultralytics' own decoding, every class an anchor scores above ``confidence`` a candidate (its NMS's
    multi_label, which its predictor does not pass on: set here), as the stream's decoding does."""
    import functools

    from ultralytics.utils import nms

    monkeypatch.setattr(nms, "non_max_suppression", functools.partial(nms.non_max_suppression, multi_label=True))
    results = yolo.predict(images, imgsz=160, conf=confidence, device="cpu", retina_masks=True, verbose=False)
    found = []
    for image, result in zip(images, results):
        size = image.shape[0]
        if result.masks is None or not len(result.masks):
            found.append((np.zeros((size, size), bool), ()))
            continue
        mask = (result.masks.data.cpu().numpy() > 0.5).any(axis=0)
        found.append((mask, tuple(sorted({result.names[int(c)] for c in result.boxes.cls.cpu().numpy()}))))
    return found


@pytest.mark.shared_models
def test_yolo_seg_onnx_finds_what_ultralytics_finds(cpu, aligned_crops, ultralytics_yolo, monkeypatch):
    from streamer.occlusion.yolo_seg import OnnxYoloSeg, YoloSegConfig

    images = [c.image for c in aligned_crops]
    found = OnnxYoloSeg(YoloSegConfig(), cpu).predict(images)
    ours = [(np.any([i.mask for i in instances], axis=0) if instances else np.zeros(image.shape[:2], bool),
             tuple(sorted({i.name for i in instances}))) for image, instances in zip(images, found)]
    theirs = _reference_masks(ultralytics_yolo, images, YoloSegConfig().confidence, monkeypatch)
    occluded = 0
    for k, ((mask, classes), (expected_mask, expected_classes)) in enumerate(zip(ours, theirs)):
        assert mask.shape == expected_mask.shape == images[k].shape[:2], k
        assert classes == expected_classes, k
        union = (mask | expected_mask).sum()
        if union:
            assert (mask & expected_mask).sum() / union >= 0.95, k
            occluded += 1
    assert occluded >= 20  # the masked faces: the comparison saw masks, not only empty crops


@pytest.mark.shared_models
def test_yolo_seg_gives_each_crop_the_same_answer_in_any_batch(cpu, aligned_crops):
    from streamer.occlusion import YoloSegConfig, build_segmenter

    segmenter = build_segmenter(YoloSegConfig(), cpu)
    crops = (aligned_crops * 2)[:32]
    together = segmenter.segment(crops)
    alone = [segmenter.segment([c])[0] for c in crops[:8]]
    for a, b in zip(together, alone):
        assert a.classes == b.classes and (a.mask ^ b.mask).sum() <= 2


def test_yolo_seg_names_its_classes_from_the_export_metadata(cpu):
    from streamer.occlusion import ColorAnomalyConfig, YoloSegConfig, build_segmenter, occluder_class_names

    names = occluder_class_names(YoloSegConfig())
    assert names[:2] == ("face_mask", "sunglasses") and len(names) == 9
    segmenter = build_segmenter(YoloSegConfig(), cpu)
    assert segmenter.class_names == names
    assert [o.mask.shape for o in segmenter.segment([])] == []
    colour = build_segmenter(ColorAnomalyConfig(), cpu)
    assert occluder_class_names(ColorAnomalyConfig()) == colour.class_names == ("eyes", "lower_face", "other")


def test_occluder_class_names_of_a_checkpoint_are_unknown_until_loaded(tmp_path):
    from streamer.occlusion import YoloSegConfig, occluder_class_names

    checkpoint = tmp_path / "occluders.pt"
    checkpoint.write_bytes(b"not unpickled")
    assert occluder_class_names(YoloSegConfig(model=checkpoint)) is None


def _tiny_onnx(path: Path, metadata: dict[str, str]) -> Path:
    """An identity-like model (1 input, 2 outputs) carrying ``metadata``."""
    import onnx
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 32, 32])
    out0 = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 3, 32, 32])
    out1 = helper.make_tensor_value_info("output1", TensorProto.FLOAT, ["batch", 3, 32, 32])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["output0"]),
                               helper.make_node("Identity", ["images"], ["output1"])], "tiny", [image], [out0, out1])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in metadata.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.save(model, str(path))
    return path


def _one_line_error_naming(path: Path, build) -> str:
    with pytest.raises(ModelError) as caught:
        build()
    message = str(caught.value)
    assert str(path) in message and "\n" not in message, message
    return message


def test_models_that_are_not_yolo_seg_exports_are_refused_by_name(cpu, tmp_path):
    from streamer.occlusion import YoloSegConfig, build_segmenter, occluder_class_names

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes())
    detect = _tiny_onnx(tmp_path / "detect.onnx", {"task": "detect", "names": "{0: 'face'}"})
    plain = _tiny_onnx(tmp_path / "plain.onnx", {})
    bad_names = _tiny_onnx(tmp_path / "names.onnx", {"task": "segment", "names": "face, hand"})
    for path, says in ((garbage, "expected an ultralytics YOLO segmentation export"),
                       (detect, "is a YOLO 'detect' model, expected a segmentation"),
                       (plain, "is not an ultralytics YOLO export"),
                       (bad_names, "'names' metadata is not a")):
        config = YoloSegConfig(model=path)
        assert says in _one_line_error_naming(path, lambda config=config: build_segmenter(config, cpu))
        assert says in _one_line_error_naming(path, lambda config=config: occluder_class_names(config))
    # Metadata right, outputs not a segmentation head's.
    wrong = _tiny_onnx(tmp_path / "wrong.onnx", {"task": "segment", "names": "{0: 'mask'}"})
    assert "expected an ultralytics" in _one_line_error_naming(
        wrong, lambda: build_segmenter(YoloSegConfig(model=wrong), cpu))


@pytest.mark.shared_models
def test_a_face_detector_given_as_occluder_model_is_refused(cpu):
    from streamer.occlusion import YoloSegConfig, build_segmenter

    path = need_shared("models", "scrfd_500m_bnkps.onnx")
    message = _one_line_error_naming(path, lambda: build_segmenter(YoloSegConfig(model=path), cpu))
    assert "is not an ultralytics YOLO export" in message


def test_garbage_and_foreign_models_are_refused_by_the_detector_and_embedder(cpu, tmp_path):
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
    from streamer.embed.arcface import ArcFaceConfig, ArcFaceEmbedder

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, np.uint8).tobytes())
    assert "expected an SCRFD face detector" in _one_line_error_naming(
        garbage, lambda: ScrfdDetector(ScrfdConfig(backend="scrfd", model=garbage), cpu))
    assert "expected an insightface ArcFaceONNX model" in _one_line_error_naming(
        garbage, lambda: ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=garbage), cpu))
    # Real models of the wrong kind: the occluder model as a detector, and as an embedder.
    assert "is not an SCRFD face detector" in _one_line_error_naming(
        SHIPPED_YOLO, lambda: ScrfdDetector(ScrfdConfig(backend="scrfd", model=SHIPPED_YOLO), cpu))
    assert "expected an insightface ArcFaceONNX model" in _one_line_error_naming(
        SHIPPED_YOLO, lambda: ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=SHIPPED_YOLO), cpu))


@pytest.mark.shared_models
def test_an_embedder_given_as_detector_is_refused(cpu):
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector

    path = need_shared("models", "mobilefacenet_128d.onnx")
    assert "is not an SCRFD face detector" in _one_line_error_naming(
        path, lambda: ScrfdDetector(ScrfdConfig(backend="scrfd", model=path), cpu))


# ---------------------------------------------------------------- the stream's imports

_BUILD = """
import json, resource, sys
from pathlib import Path
from engines import Device
from streamer.inpaint import build_inpainter
from streamer.inpaint.learned import LearnedInpaintConfig
from streamer.occlusion import YoloSegConfig, build_segmenter, occluder_class_names
cpu = Device("cpu")
models = Path(sys.argv[1]) if len(sys.argv) > 1 else None
built = [build_segmenter(YoloSegConfig(), cpu), build_inpainter(LearnedInpaintConfig(), cpu)]
occluder_class_names(YoloSegConfig())
if models:
    from streamer.detect import build_detector
    from streamer.detect.scrfd import ScrfdConfig
    from streamer.embed import build_embedder
    from streamer.embed.arcface import ArcFaceConfig
    built.append(build_detector(ScrfdConfig(backend="scrfd", model=models / "scrfd_2.5g_bnkps.onnx"), cpu))
    built.append(build_embedder(ArcFaceConfig(backend="arcface", model=models / "mobilefacenet_128d.onnx"), cpu))
# ru_maxrss survives exec on Linux (it would report pytest's own peak): the new image's VmHWM where there is one.
status = Path("/proc/self/status")
peak = (int(next(line.split()[1] for line in status.read_text().splitlines() if line.startswith("VmHWM")))
        if status.exists() else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
print(json.dumps({"imported": [m for m in ("torch", "ultralytics", "insightface") if m in sys.modules],
                  "built": len(built), "peak_rss_mib": peak / 1024}))
"""


def _build_in_a_fresh_process(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _BUILD, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_shipped_onnx_models_build_without_torch_or_ultralytics():
    report = _build_in_a_fresh_process()
    assert report["built"] == 2 and report["imported"] == [], report


@pytest.mark.shared_models
def test_the_stream_s_four_models_build_without_torch_ultralytics_or_insightface():
    """SCRFD, the shipped YOLO-seg and inpainter exports and ArcFace on a CPU: none of the heavy
    frameworks (torch alone is hundreds of MB of memory) is imported."""
    report = _build_in_a_fresh_process(str(need_shared("models")))
    assert report["built"] == 4 and report["imported"] == [], report
    assert report["peak_rss_mib"] < 600, report  # about 260 MiB measured; torch alone took it past 1 GiB
