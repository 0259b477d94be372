"""Each stage on real images: packaged ones everywhere, ../shared's real models where present."""

import cv2
import numpy as np
import pytest

from streamer.align import align_face
from streamer.demo import draw_occluder
from tests.conftest import FACES, MODELS, need_shared


def test_haar_finds_the_packaged_faces(haar, sprites):
    assert [s.name for s in sprites][:2] == ["tom_hanks", "eileen_collins"]
    for sprite in sprites:
        assert len(haar.detect(sprite.image)) >= 1, sprite.name


def test_haar_finds_a_face_wearing_a_mask_by_its_eyes(haar, sprites):
    masked = next(s for s in sprites if s.occluder == "face_mask")
    image = draw_occluder(masked.image, masked.landmarks, "face_mask")
    found = haar.detect(image)
    assert len(found) == 1
    assert np.linalg.norm(found.landmarks[0, :2] - masked.landmarks[:2], axis=1).max() < 12


def test_colour_anomaly_finds_drawn_occluders_where_they_are(haar, sprites, cpu):
    from streamer.occlusion.color_anomaly import ColorAnomalyConfig, ColorAnomalySegmenter

    segmenter = ColorAnomalySegmenter(ColorAnomalyConfig(), cpu)
    expected = {"face_mask": "lower_face", "hand": "lower_face", "sunglasses": "eyes"}
    for sprite in sprites:
        clean = segmenter.segment([align_face(sprite.image, sprite.landmarks, 112)])[0]
        if sprite.occluder is None:
            continue
        covered = draw_occluder(sprite.image, sprite.landmarks, sprite.occluder)
        found = segmenter.segment([align_face(covered, sprite.landmarks, 112)])[0]
        assert expected[sprite.occluder] in found.classes, sprite.name
        assert found.fraction > clean.fraction + 0.08, sprite.name


def test_opencv_inpainting_fills_only_the_hole(cpu):
    from streamer.inpaint import inpaint_batched
    from streamer.inpaint.opencv import OpenCVInpaintConfig, OpenCVInpainter

    crops = np.full((3, 112, 112, 3), (90, 120, 170), np.uint8)
    masks = np.zeros((3, 112, 112), bool)
    masks[:, 60:90, 30:80] = True
    crops[masks] = (255, 0, 0)  # the "occluder"
    out = inpaint_batched(OpenCVInpainter(OpenCVInpaintConfig(max_batch=2), cpu), crops, masks)
    assert out.shape == crops.shape
    assert np.abs(out[masks].astype(int) - (90, 120, 170)).max() < 25  # hole now looks like its surroundings
    grown = cv2.dilate(masks[0].astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert np.array_equal(out[0][~grown], crops[0][~grown])  # the rest is untouched


def _recapture(crop: np.ndarray, rng) -> np.ndarray:
    """What a camera does to a face: lower resolution, JPEG, a small shift, sensor noise."""
    small = cv2.resize(cv2.resize(crop, (70, 70), interpolation=cv2.INTER_AREA), (112, 112))
    small = cv2.imdecode(cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 60])[1], cv2.IMREAD_COLOR)
    shift = np.float32([[1, 0, rng.normal(0, 1.5)], [0, 1, rng.normal(0, 1.5)]])
    small = cv2.warpAffine(small, shift, (112, 112), borderMode=cv2.BORDER_REPLICATE)
    return np.clip(small + rng.normal(0, 2, small.shape), 0, 255).astype(np.uint8)


def test_lbp_descriptor_recognises_a_recaptured_face_above_its_threshold(sprites, cpu):
    from streamer.embed.lbp_histogram import LbpHistogramConfig, LbpHistogramEmbedder

    embedder = LbpHistogramEmbedder(LbpHistogramConfig(), cpu)
    rng = np.random.default_rng(0)
    crops = np.stack([align_face(s.image, s.landmarks, 112).image for s in sprites])
    gallery = embedder.embed(crops)
    probes = embedder.embed(np.stack([_recapture(c, rng) for c in crops]))
    assert np.allclose(np.linalg.norm(gallery, axis=1), 1, atol=1e-5)
    scores = probes @ gallery.T
    genuine = np.diag(scores)
    impostor = scores[~np.eye(len(scores), dtype=bool)]
    assert (scores.argmax(axis=1) == np.arange(len(crops))).all()
    assert genuine.min() >= embedder.default_threshold > impostor.max(), (genuine, impostor.max())


@pytest.mark.shared_models
def test_scrfd_finds_both_faces_in_two_people(cpu):
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector

    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=need_shared("models", "scrfd_500m_bnkps.onnx")), cpu)
    found = detector.detect(cv2.imread(str(FACES / "two_people.jpg")))
    assert len(found) == 2
    assert found.landmarks.shape == (2, 5, 2) and (found.scores > 0.5).all()


@pytest.mark.shared_models
def test_mobilefacenet_puts_biden_closer_to_biden_than_to_obama(cpu):
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
    from streamer.embed.arcface import ArcFaceConfig, ArcFaceEmbedder

    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=need_shared("models", "scrfd_500m_bnkps.onnx")), cpu)
    embedder = ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=MODELS / "mobilefacenet_128d.onnx"), cpu)
    train = FACES / "knn_examples" / "train"
    crops = []
    for path in (train / "biden" / "biden.jpg", train / "biden" / "biden2.jpg", train / "obama" / "obama.jpg"):
        image = cv2.imread(str(path))
        crops.append(align_face(image, detector.detect(image).landmarks[0], 112).image)
    biden, biden2, obama = embedder.embed(np.stack(crops))
    assert biden @ biden2 > biden @ obama + 0.3
    assert embedder.model_id.startswith("arcface:mobilefacenet_128d+mirror:")  # ArcFace adds the mirror image


@pytest.mark.shared_models
def test_a_detector_file_is_refused_as_an_embedder(cpu):
    from streamer.embed.arcface import ArcFaceConfig, ArcFaceEmbedder
    from streamer.errors import ModelError

    with pytest.raises(ModelError, match="is SCRFD, expected an insightface ArcFaceONNX model"):
        ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=need_shared("models", "scrfd_500m_bnkps.onnx")), cpu)


@pytest.mark.shared_models
def test_colour_anomaly_on_real_masked_faces(cpu):
    """Regression baseline for the classical default on real photos (SCRFD-aligned, 120 of each)."""
    import glob

    from streamer.detect import detect_in_photo
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
    from streamer.occlusion.color_anomaly import ColorAnomalyConfig, ColorAnomalySegmenter

    root = need_shared("data", "masked_faces")
    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=MODELS / "scrfd_500m_bnkps.onnx", input_size=320), cpu)
    segmenter = ColorAnomalySegmenter(ColorAnomalyConfig(), cpu)
    rates = {}
    for kind in ("with_mask", "without_mask"):
        crops = []
        for path in sorted(glob.glob(str(root / kind / "*")))[:120]:
            found, image = detect_in_photo(detector, cv2.imread(path))
            if len(found):
                crops.append(align_face(image, found.landmarks[0], 112))
        rates[kind] = np.mean([o.occluded for o in segmenter.segment(crops)])
    assert rates["with_mask"] >= 0.8, rates
    assert rates["without_mask"] <= 0.3, rates


@pytest.mark.shared_models
def test_shipped_occluder_model_finds_real_face_masks_and_names_them(cpu):
    """The default occlusion stage (the project's YOLO-seg) on real photos it never saw: masked faces,
    and unmasked ones from the data engine's held-out split (120 of each)."""
    from streamer.datagen.face_bank import split_of
    from streamer.detect import detect_in_photo
    from streamer.detect.scrfd import ScrfdConfig, ScrfdDetector
    from streamer.occlusion import YoloSegConfig, build_segmenter

    root = need_shared("data", "masked_faces")
    detector = ScrfdDetector(ScrfdConfig(backend="scrfd", model=MODELS / "scrfd_500m_bnkps.onnx", input_size=320), cpu)
    segmenter = build_segmenter(YoloSegConfig(), cpu)
    found_mask = {}
    for kind in ("with_mask", "without_mask"):
        folder = root / kind
        photos = [p for p in sorted(folder.iterdir()) if kind == "with_mask" or split_of(p, folder) == "test"]
        crops = []
        for path in photos[:120]:
            found, image = detect_in_photo(detector, cv2.imread(str(path)))
            if len(found):
                crops.append(align_face(image, found.landmarks[0], 112))
        occlusions = segmenter.segment(crops)
        found_mask[kind] = np.mean(["face_mask" in o.classes for o in occlusions])
        if kind == "with_mask":  # the mask is where a mask is: the lower face, a good share of it
            fractions = [o.fraction for o in occlusions if "face_mask" in o.classes]
            assert 0.15 < np.median(fractions) < 0.7, np.median(fractions)
    assert found_mask["with_mask"] >= 0.75, found_mask
    assert found_mask["without_mask"] <= 0.05, found_mask


def test_a_face_too_narrow_to_rebuild_keeps_its_real_pixels_though_its_occluder_is_reported(cpu):
    """On real footage the occluder model puts false hands on chins of faces 18-22 px wide; a face narrower than
    pipeline.min_inpainted_face_px is never inpainted. A real masked photo: inpainted at the default, its real
    pixels kept (the mask still reported) when the same face is below the limit."""
    import time

    from streamer.config import load_config
    from streamer.records import VideoFrame
    from streamer.stages import Stages
    from tests.paths import ROOT

    photo = cv2.imread(str(need_shared("data", "masked_faces", "with_mask", "0417.jpg")))
    config = load_config(ROOT / "configs" / "dev-shared-models.yaml")
    assert config.pipeline.min_inpainted_face_px == 32
    stages = Stages.build(config, cpu)
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[100:100 + photo.shape[0], 200:200 + photo.shape[1]] = photo

    def analysed(k: int):
        results = stages.detect([VideoFrame("cam", k, frame, None, time.time(), time.monotonic())])
        stages.analyse(results)
        return max(results[0].faces, key=lambda f: f.box[2] - f.box[0])

    face = analysed(0)
    assert face.box[2] - face.box[0] > 32 and "face_mask" in face.occlusion.classes and face.reconstructed
    stages.min_inpainted_face_px = float(face.box[2] - face.box[0]) + 1
    face = analysed(1)
    assert "face_mask" in face.occlusion.classes and not face.reconstructed
