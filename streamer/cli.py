"""The ``streamer`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from streamer import __version__
from streamer.errors import StreamerError
from streamer.redaction import RedactingFilter, redact

DEFAULT_DEMO_CONFIG = Path("configs/demo.yaml")


def _setup_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING,
                        handlers=[handler], force=True)


def _print_summary(summary) -> None:
    if summary.run_dir:
        print(f"run:    {summary.run_dir}")
    for name, frames in summary.frames.items():
        files = [p for p in summary.videos if p.stem == name or p.parent.name == name]
        if len(files) == 1:
            print(f"video:  {files[0]} ({frames} frames)")
        elif files:
            print(f"video:  {files[0].parent}/ ({frames} frames in {len(files)} segments)")
    for line in summary.outputs:
        print(line)
    if summary.store_path:
        print(f"store:  {summary.store_path}")
    if summary.inpainted or summary.reused:
        print(f"reconstructions: {summary.inpainted} faces inpainted, {summary.reused} kept their track's "
              f"reconstruction")
    stages = ", ".join(f"{k} {v:.1f} ms" for k, v in summary.stage_ms.items())
    print(f"done: {summary.total_frames} frames in {summary.seconds:.1f} s = {summary.fps:.1f} fps"
          + (f" (per item: {stages})" if stages else "")
          + (f" - stopped by {summary.stopped_by}, outputs closed" if summary.stopped_by else ""))


def _exit_code(summary) -> int:
    """What the run's end says to a script or a service manager; problems go to stderr, one line each."""
    for line in summary.warnings:
        print(f"warning: {line}", file=sys.stderr)
    for error in summary.errors:
        print(f"error: {redact(error)}", file=sys.stderr)
    # failed: an output could not be written (a full disk), the user must act; incomplete: a source failed,
    # or a file gave fewer frames than it holds. Ctrl-C is a user's interruption; SIGTERM is how a service
    # manager stops a service: a clean stop.
    return {"failed": 2, "incomplete": 1, "stopped": 130 if summary.stopped_by == "SIGINT" else 0}.get(
        summary.outcome, 0)


def cmd_run(args) -> int:
    from streamer.config import load_config
    from streamer.progress import ProgressReporter
    from streamer.runtime import run

    config = load_config(args.config, args.source)
    if args.out:
        config = config.model_copy(update={"output": config.output.model_copy(update={"dir": Path(args.out)})})
    if args.cluster:
        from streamer.config import parse_config

        data = config.model_dump(mode="json")
        data["cluster"] = {**(data.get("cluster") or {}), "address": args.cluster}
        config = parse_config(data, origin=args.config)  # the cluster's checks across sections, once more
    if config.cluster is not None:
        return _run_cluster(config, args)
    summary = run(config, ProgressReporter(enabled=not args.quiet))
    _print_summary(summary)
    return _exit_code(summary)


def _run_cluster(config, args) -> int:
    from streamer.cluster.driver import run_cluster
    from streamer.progress import ProgressReporter
    from streamer.store.postgres import safe_location

    summary = run_cluster(config, ProgressReporter(enabled=not args.quiet))
    for worker in summary.workers:
        frames = worker.get("frames")
        print(f"{worker['worker']}: {worker['state']}, cameras {', '.join(worker['cameras'])}, "
              f"restarts {worker['restarts']}, events {worker.get('events')}"
              + (f", {frames} frames in {worker['seconds']:.1f} s" if frames is not None else "")
              + (f", run {worker['run_dir']}" if worker.get("run_dir") else ""))
    if summary.run_dir:
        print(f"run:    {summary.run_dir}")
    for line in summary.outputs:
        print(line)
    print(f"store:  {safe_location(config.store.url)}")
    print(f"done: {len(summary.workers)} workers in {summary.seconds:.1f} s"
          + (f" - stopped by {summary.stopped_by}, outputs closed" if summary.stopped_by else ""))
    for worker in summary.failed:
        print(f"error: {redact(worker.get('error') or worker['worker'] + ' failed')}", file=sys.stderr)
    for error in summary.errors:
        print(f"error: {redact(error)}", file=sys.stderr)
    if summary.failed or summary.errors:
        return 1
    return 130 if summary.stopped_by == "SIGINT" else 0


def cmd_cluster_status(args) -> int:
    from streamer.cluster.driver import read_status, render_status

    state = read_status(args.address)
    if state is None:
        print(f"error: no streamer run on the Ray cluster at {args.address}", file=sys.stderr)
        return 1
    print(render_status(state) if not args.json else json.dumps(state, indent=1))
    return 0


def cmd_config_show(args) -> int:
    from streamer.config import load_config, redacted_dump

    print(redacted_dump(load_config(args.config)), end="")
    return 0


def cmd_doctor(args) -> int:
    from streamer.doctor import environment_checks, render, stage_checks

    checks = environment_checks()
    print(render(checks))
    if args.config:
        from streamer.config import load_config

        stage = stage_checks(load_config(args.config))
        print(f"\nstages of {args.config}:")
        print(render(stage))
        return 0 if all(c.ok for c in stage) else 1
    return 0


def cmd_models(args) -> int:
    from streamer.modelpacks import KNOWN_PACKS, installed, models_dir, pull

    root = Path(args.dir) if args.dir else models_dir()
    if args.action == "pull":
        if not args.name:
            raise StreamerError("models pull: name a pack, e.g. 'streamer models pull buffalo_s'")
        folder = pull(args.name, root, url=args.url, sha256=args.sha256, mirror=args.mirror)
        print(f"installed {args.name} in {folder}: {', '.join(p.name for p in sorted(folder.glob('*.onnx')))}")
        return 0
    print(f"model packs in {root}:")
    for pack in KNOWN_PACKS.values():
        files = installed(pack, root)
        state = f"installed ({', '.join(p.name for p in files)})" if files else "not installed"
        print(f"  {pack.name:<11} {state}\n              {pack.contents}")
    if args.config:
        from streamer.config import load_config

        config = load_config(args.config)
        print(f"configured in {args.config}:")
        for stage in ("detector", "occlusion", "inpainter", "embedder"):
            section = getattr(config, stage)
            model = getattr(section, "model", None)
            print(f"  {stage:<10} {section.backend}" + (f"  {model}" if model else "  (no weights needed)"))
    return 0


def cmd_demo(args) -> int:
    from streamer.config import load_config, parse_config
    from streamer.demo import build_demo
    from streamer.progress import ProgressReporter
    from streamer.runtime import run

    out = Path(args.out)
    config_path = Path(args.config) if args.config else DEFAULT_DEMO_CONFIG
    base = load_config(config_path) if config_path.exists() else parse_config({})
    print(f"building the demo clip in {out / 'input'} ...")
    build_demo(out / "input", frames=args.frames)
    data = base.model_dump(mode="python", exclude_unset=True)  # what the user wrote, tags included
    data["sources"] = [{"name": "demo", "uri": str(out / "input" / "demo.mp4")}]
    data["gallery"] = {**data.get("gallery", {}), "dir": out / "input" / "gallery"}
    data["output"] = {**data.get("output", {}), "dir": out}
    config = parse_config(data, origin=str(config_path))
    _redescribe_demo_gallery(config)
    summary = run(config, ProgressReporter(enabled=not args.quiet))
    _print_summary(summary)
    print(f"ground truth: {out / 'input' / 'ground_truth.json'}")
    return _exit_code(summary)


def _redescribe_demo_gallery(config) -> None:
    """A demo folder kept from an earlier version holds a gallery described by another embedder (dlib single view
    before 2026-12-05), which a run refuses: the demo's own gallery is described again, as 'streamer gallery
    reembed' would, rather than make a demo fail."""
    from streamer.embed import build_embedder
    from streamer.identify import store_path
    from streamer.identify.gallery import embed_missing
    from streamer.store.database import connect
    from streamer.store.gallery import GalleryStore

    path = store_path(config.store, config.output.dir)
    if config.store.url is not None or not path.exists():
        return
    store = GalleryStore(connect(path))
    try:
        described_by = set(store.model_ids())
        if not described_by:
            return
        embedder = build_embedder(config.embedder, config.engine.select_device())
        if described_by - {embedder.model_id}:
            done = embed_missing(store, embedder)
            if done:
                print(f"the demo's gallery in {path} was described by another embedder: {done} faces described "
                      f"again by {embedder.model_id}")
    finally:
        store.conn.close()


def cmd_data_faces(args) -> int:

    from engines import select_device
    from streamer.datagen.face_bank import build_face_bank
    from streamer.detect.scrfd import ScrfdDetector
    from streamer.errors import ConfigError

    faces = [Path(f) for f in args.faces]
    for folder in faces:
        if not folder.is_dir():
            raise ConfigError(f"--faces: not a folder: {folder}")
    detector = ScrfdDetector(_scrfd_config(args.detector_model), select_device("cpu"))
    bank = build_face_bank(faces, Path(args.out), detector, progress=lambda line: print(line, flush=True))
    counts = ", ".join(f"{len(bank.split(s))} {s}" for s in ("train", "val", "test"))
    print(f"face bank: {bank.folder} ({counts})")
    return 0


def cmd_data_occlusion(args) -> int:
    from streamer.datagen.face_bank import FaceBank
    from streamer.datagen.occluders import OccluderLibrary
    from streamer.datagen.occlusion_dataset import DatasetSettings, build
    from streamer.errors import ConfigError

    if args.occluders and not Path(args.occluders).is_dir():
        raise ConfigError(f"--occluders: not a folder: {args.occluders}")
    bank = FaceBank(Path(args.bank))
    library = OccluderLibrary(Path(args.occluders) if args.occluders else None)
    print(f"occluders: {library.describe()}")
    settings = DatasetSettings(per_face=args.per_face, seed=args.seed, image_size=args.image_size,
                               write_pairs=not args.no_pairs, limit=args.limit)
    out = Path(args.out)
    labelled = _labelled_faces(args.labelled, args.detector_model, bank.crop_size, args.limit) if args.labelled else []
    manifest = build(bank, out, library, settings, workers=args.workers,
                     progress=lambda line: print(line, flush=True), labelled=labelled)
    print(f"dataset: {out / 'yolo' / 'data.yaml'} ({manifest['samples']['train']} train, "
          f"{manifest['samples']['val']} val samples); pairs: {out / 'pairs'}; manifest: {out / 'manifest.json'}")
    return 0


def _labelled_faces(specs: list[str], detector_model: str | None, size: int, limit: int | None = None) -> list:
    """The train and val faces of every ``KIND=DIR`` of --labelled (at most ``limit`` photos of each), aligned by
    the SCRFD model of --detector-model."""
    from engines import select_device
    from streamer.datagen.labelled_faces import LABELLED_SETS, labelled_faces, labelled_photos
    from streamer.detect.scrfd import ScrfdDetector
    from streamer.errors import ConfigError

    sets = []
    for spec in specs:
        kind, _, folder = spec.partition("=")
        if kind not in LABELLED_SETS or not folder:
            raise ConfigError(f"--labelled {spec}: expected KIND=DIR with KIND one of {', '.join(LABELLED_SETS)}")
        if not Path(folder).is_dir():
            raise ConfigError(f"--labelled {spec}: not a folder: {folder}")
        photos = [p for p in labelled_photos(kind, Path(folder)) if p.split != "test"]  # test: never written
        sets.append((kind, photos[:limit] if limit else photos))
    if not detector_model:
        raise ConfigError("--labelled needs --detector-model (an SCRFD .onnx) to align its faces")
    detector = ScrfdDetector(_scrfd_config(detector_model), select_device("cpu"))
    faces = []
    for kind, photos in sets:
        faces += labelled_faces(kind, photos, detector, size, progress=lambda line: print(line, flush=True))
    return faces


def _scrfd_config(path: str):
    from pydantic import ValidationError

    from streamer.detect.scrfd import ScrfdConfig
    from streamer.errors import ConfigError

    try:
        return ScrfdConfig(backend="scrfd", model=Path(path), input_size=320)
    except ValidationError as exc:
        raise ConfigError(f"--detector-model: {exc.errors()[0]['msg']}") from None


def cmd_train_occlusion(args) -> int:
    from streamer.errors import ConfigError
    from streamer.train.occlusion import OcclusionTraining, export_onnx, train

    if args.lr is not None and not 0 < args.lr < 1:
        raise ConfigError(f"--lr: must be between 0 and 1, got {args.lr}")

    spec = OcclusionTraining(data=Path(args.data), out=Path(args.out), model=args.model, epochs=args.epochs,
                             imgsz=args.imgsz, batch=args.batch, device=args.device, seed=args.seed,
                             workers=args.workers, minutes=args.minutes, resume=args.resume, lr=args.lr)
    weights = train(spec)
    print(f"weights: {weights}; ONNX: {export_onnx(weights, args.imgsz)}")
    return 0


def cmd_train_inpainter(args) -> int:
    from streamer.errors import ConfigError
    from streamer.train.inpainter import InpainterTraining, train
    from streamer.train.inpainter_losses import LossWeights

    for flag, value in (("--identity-weight", args.identity_weight), ("--adversarial-weight", args.adversarial_weight)):
        if value is not None and not value >= 0:  # NaN too
            raise ConfigError(f"{flag}: must be 0 or more, got {value}")
    spec = InpainterTraining(
        banks=[Path(b) for b in args.bank], out=Path(args.out),
        occluders=Path(args.occluders) if args.occluders else None,
        arch=args.arch, base=args.base, size=args.size, upsample=args.upsample, epochs=args.epochs,
        minutes=args.minutes, batch=args.batch, lr=args.lr, device=args.device, workers=args.workers, seed=args.seed,
        identity_model=Path(args.identity_model) if args.identity_model else None,
        exclude_like=[Path(b) for b in args.exclude_like],
        adversarial={"on": True, "off": False, "auto": None}[args.gan], resume=args.resume, limit=args.limit,
        samples_per_epoch=args.samples_per_epoch, log_every=args.log_every,
        init=Path(args.init) if args.init else None,
        weights=LossWeights(**{key: value for key, value in (("identity", args.identity_weight),
                                                             ("adversarial", args.adversarial_weight))
                               if value is not None}),
    )
    if args.adversarial_weight is not None and not spec.uses_gan:
        raise ConfigError(f"--adversarial-weight: the adversarial term is off for {args.arch} with --gan {args.gan}: "
                          "add --gan on")
    best = train(spec, progress=lambda line: print(line, flush=True))
    print(f"weights: {best}")
    return 0


def cmd_train_embedder(args) -> int:
    from streamer.train.embedder import EmbedderTraining, train

    spec = EmbedderTraining(
        teacher=args.teacher if args.teacher == "dlib" else Path(args.teacher), faces=[Path(f) for f in args.faces],
        out=Path(args.out),
        occluders=Path(args.occluders) if args.occluders else None,
        exclude_like=[Path(f) for f in args.exclude_like] or None,
        exclude_by=Path(args.exclude_by) if args.exclude_by else None, epochs=args.epochs, minutes=args.minutes,
        batch=args.batch, lr=args.lr, clean_weight=args.clean_weight, contrast=args.contrast,
        temperature=args.temperature, frozen_share=args.frozen_share, misalign=args.misalign, mirror=args.mirror,
        hide_occluders=args.hide_occluders, points=Path(args.points) if args.points else None,
        init=Path(args.init) if args.init else None, device=args.device,
        workers=args.workers,
        seed=args.seed, log_every=args.log_every, resume=args.resume, limit=args.limit,
        samples_per_epoch=args.samples_per_epoch)
    student = train(spec, progress=lambda line: print(line, flush=True))
    print(f"student: {student} (use it as embedder.student beside "
          f"{'embedder.backend dlib' if spec.teacher == 'dlib' else f'embedder.model {spec.teacher}'})")
    return 0


def cmd_train_points(args) -> int:
    from streamer.train.points import PointsTraining, train

    spec = PointsTraining(
        faces=[Path(f) for f in args.faces], out=Path(args.out),
        occluders=Path(args.occluders) if args.occluders else None, faces_per_bank=args.faces_per_bank,
        variants=args.variants, trees=args.trees, oversampling=args.oversampling, tree_depth=args.tree_depth,
        seed=args.seed, **({"threads": args.threads} if args.threads is not None else {}))
    predictor = train(spec, progress=lambda line: print(line, flush=True))
    print(f"predictor: {predictor} (use it as embedder.student_points beside embedder.backend dlib)")
    return 0


def cmd_train_detector(args) -> int:
    from streamer.train.detector import DetectorTraining, train

    spec = DetectorTraining(
        teacher=Path(args.teacher), faces=[Path(f) for f in args.faces], out=Path(args.out),
        occluders=Path(args.occluders) if args.occluders else None,
        backgrounds=[Path(b) for b in args.backgrounds] or None, canvas=args.canvas, epochs=args.epochs,
        minutes=args.minutes, batch=args.batch, lr=args.lr, frozen_share=args.frozen_share, device=args.device,
        workers=args.workers, seed=args.seed,
        log_every=args.log_every, resume=args.resume, limit=args.limit, samples_per_epoch=args.samples_per_epoch,
        occluders_alone=args.occluders_alone, surroundings=Path(args.surroundings) if args.surroundings else None)
    detector = train(spec, progress=lambda line: print(line, flush=True))
    print(f"detector: {detector}")
    return 0


def cmd_export_inpainter(args) -> int:
    from streamer.errors import ConfigError
    from streamer.inpaint.export import export_checkpoint

    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_file():
        raise ConfigError(f"checkpoint not found: {checkpoint}")
    try:
        out, difference = export_checkpoint(checkpoint, Path(args.out))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    print(f"onnx: {out} (dynamic batch); torch vs ONNX Runtime at batch 1/3/7: max |difference| {difference:.2e}")
    return 0 if difference < 1e-3 else 1


def cmd_eval_inpainter(args) -> int:
    import json

    import cv2

    from engines import select_device
    from streamer.datagen.face_bank import FaceBank
    from streamer.datagen.occluders import OccluderLibrary
    from streamer.embed.arcface import ArcFaceConfig, ArcFaceEmbedder
    from streamer.errors import ConfigError, ModelError
    from streamer.eval.inpainter import build_eval_set, evaluate, model_method, opencv_method, table

    device = select_device(args.device)
    models = [Path(m) for m in args.model]
    for model in models:
        if not model.is_file():
            raise ConfigError(f"--model: not found: {model}")
    if args.embedder == "dlib":
        from streamer.embed.dlib_resnet import DlibEmbedderConfig, DlibResnetEmbedder

        try:
            # single view, as the inpainter's model-card tables were measured (dlib's default is mirrored since
            # 2026-12-05): an inpainter's figures stay comparable across sessions
            embedder = DlibResnetEmbedder(DlibEmbedderConfig(backend="dlib", mirror=False, student=None), device)
        except ModelError as exc:
            raise ConfigError(f"--embedder dlib: {exc}") from None
    elif not Path(args.embedder).is_file():
        raise ConfigError(f"--embedder: not found: {args.embedder} (an ArcFace-type .onnx, or dlib)")
    else:
        embedder = ArcFaceEmbedder(ArcFaceConfig(backend="arcface", model=Path(args.embedder)), device)
    data = build_eval_set(FaceBank(Path(args.bank)), OccluderLibrary(Path(args.occluders) if args.occluders else None),
                          args.size, args.seed, args.limit)
    methods = {"no occluder (upper bound)": lambda crops, holes: data.originals,
               "occluded input (no inpainting)": None,
               "OpenCV Telea": opencv_method(cv2.INPAINT_TELEA),
               "OpenCV Navier-Stokes": opencv_method(cv2.INPAINT_NS)}
    names = [m.name for m in models]
    for model in models:
        # Two runs' exports share a file name: each is shown by its folder too, never one in place of the other.
        methods[f"{model.parent.name}/{model.name}" if names.count(model.name) > 1 else model.name] = \
            model_method(model, device)
    results = evaluate(data, methods, embedder.embed, progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(table(results, data))
    if args.json:
        # NaN (no figure) as null: strict JSON
        rows = [{k: None if isinstance(v, float) and v != v else v for k, v in r.__dict__.items()} for r in results]
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def cmd_eval_occlusion(args) -> int:
    from engines import select_device
    from streamer.config import load_config, parse_config
    from streamer.detect.scrfd import ScrfdDetector
    from streamer.errors import ConfigError
    from streamer.eval import occlusion as ev
    from streamer.occlusion.gate import OccluderGate, gate_file, read_gate_file
    from streamer.occlusion.yolo_seg import YoloSegConfig, YoloSegSegmenter

    folders = {"--masked-faces": args.masked_faces, "--celebamaskhq": args.celebamaskhq,
               "--maskedfacenet": args.maskedfacenet, "--aizoo": args.aizoo}
    for flag, folder in folders.items():
        if folder and not Path(folder).is_dir():
            raise ConfigError(f"{flag}: not a folder: {folder}")
    models = [Path(m) for m in args.model]
    for model in models:
        if not model.is_file():
            raise ConfigError(f"--model: not found: {model}")
        if model.suffix.lower() not in (".onnx", ".pt"):
            raise ConfigError(f"--model: expected a YOLO-seg .onnx or .pt, got {model.name}")
    if not 0 < args.confidence < 1:
        raise ConfigError(f"--confidence: must be between 0 and 1, got {args.confidence}")
    if args.masked_faces:
        for kind in ("with_mask", "without_mask"):
            if not (Path(args.masked_faces) / kind).is_dir():
                raise ConfigError(f"--masked-faces: no {kind}/ folder in {args.masked_faces}")
    if args.aizoo:
        for name in ("face_mask_detection.prototxt", "face_mask_detection.caffemodel"):
            if not (Path(args.aizoo) / name).is_file():
                raise ConfigError(f"--aizoo: no {name} in {args.aizoo}")
    config = load_config(args.config) if args.config else parse_config({})
    out = Path(args.out)
    cache = out / "cache" / Path(args.detector_model).stem  # faces aligned by another detector are other crops
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    device = select_device("cpu")
    detector = ScrfdDetector(_scrfd_config(args.detector_model), device)
    aizoo = ev.Aizoo(Path(args.aizoo)) if args.aizoo else None
    faces = []
    if args.masked_faces:
        for kind in ("with_mask", "without_mask"):
            faces += ev.masked_photo_faces(Path(args.masked_faces) / kind, kind, detector, aizoo,
                                           cache / f"{kind}.npz", say)
    for kind, folder in (("celebamaskhq", args.celebamaskhq), ("maskedfacenet", args.maskedfacenet)):
        if folder:
            faces += ev.labelled_eval_faces(kind, Path(folder), detector, cache / f"{kind}.npz", say)
    if not faces:
        raise ConfigError("no evaluation faces: give --masked-faces, --celebamaskhq and/or --maskedfacenet")
    say(f"{len(faces)} faces aligned")
    results, figures = {}, {}
    see_through = getattr(config.occlusion, "see_through", None)  # --config's, else the default
    for model in models:
        segmenter = YoloSegSegmenter(YoloSegConfig(model=model, confidence=args.confidence, see_through=see_through),
                                     device)
        found = ev.predict(segmenter, faces)
        gates = {f"{model.name}, confidence {args.confidence:g} alone": OccluderGate({}, args.confidence)}
        if gate_file(model).is_file():
            gates[f"{model.name}, its shipped gate"] = segmenter.gate
        if args.choose_gate:
            shipped = read_gate_file(gate_file(model)) if gate_file(model).is_file() else {}
            chosen = ev.choose_gate(faces, found, segmenter.class_names, args.confidence, shipped)
            written = out / gate_file(model).name
            ev.write_gate(chosen, model, written, faces)
            say(f"gate chosen on val: {written}")
            gates[f"{model.name}, the gate chosen on val"] = ev.gate_from(chosen, args.confidence,
                                                                         segmenter.gate.see_through)
        for title, gate in gates.items():
            results[title] = ev.measure(faces, found, gate, config.pipeline.min_occluded_fraction)
            figures[title] = gate.describe()
    (out / "occlusion.json").write_text(json.dumps({"results": results, "gates": figures}, indent=1))
    report = ev.markdown(results)
    (out / "occlusion.md").write_text(report)
    print(report)
    return 0


def cmd_eval_identity(args) -> int:

    from engines import select_device
    from streamer.config import load_config, parse_config
    from streamer.datagen.occluders import OccluderLibrary
    from streamer.errors import ConfigError
    from streamer.eval.identity import CONDITIONS, IdentitySettings, build
    from streamer.eval.identity_report import score, target_line, write
    from streamer.identify.frame import frame_setting
    from streamer.identify.gallery import reconstruction_classes
    from streamer.stages import Stages

    faces = Path(args.faces)
    if not faces.is_dir():
        raise ConfigError(f"--faces: not a folder: {faces}")
    for folder in args.distractors:
        if not Path(folder).is_dir():
            raise ConfigError(f"--distractors: not a folder: {folder}")
    unknown = sorted(set(args.conditions or ()) - set(CONDITIONS))
    if unknown:
        raise ConfigError(f"--conditions: unknown {', '.join(unknown)}; choose from {', '.join(CONDITIONS)}")
    # LBP cannot tell people apart across photos well enough to judge who may be one.
    judge_settings = _embedder_settings(args.judge, "--judge", ("dlib",)) if args.judge else None
    config = load_config(args.config) if args.config else parse_config({})
    device = select_device(args.device)
    stages = Stages.build(config, device)
    embedders = {name: rest for name, *rest in _eval_embedders(args, config, stages, device)}
    judge = None
    if judge_settings is not None:
        from streamer.embed import build_embedder

        judge = build_embedder(judge_settings.model_copy(update={"student": None}), device)
    settings = IdentitySettings(size=config.pipeline.crop_size, probes_per_person=args.probes_per_person,
                                seed=args.seed, people=args.people, gallery_sizes=tuple(args.sizes),
                                conditions=tuple(args.conditions or CONDITIONS),
                                min_occluded_fraction=config.pipeline.min_occluded_fraction,
                                probe_alignment=args.probe_alignment)
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    for line in stages.describe():
        say(line)
    try:
        data = build(faces, [Path(d) for d in args.distractors], stages,
                     OccluderLibrary(Path(args.occluders) if args.occluders else None), settings, progress=say,
                     cache_dir=Path(args.out) / "cache", judge=judge)
    except ValueError as exc:
        raise ConfigError(f"--faces: {exc}") from None
    report = {"data": {"faces": str(faces), "enrolled": len(data.enrolled), "strangers": len(data.strangers),
                       "probes": len(data.probes[0].people), "distractors": len(data.distractors),
                       "skipped_photos": data.skipped_photos, "dropped_distractors": data.dropped_distractors,
                       "like_judged_by": data.like_judged_by,
                       "seed": args.seed, "probe_alignment": args.probe_alignment,
                       "models": stages.describe()[1:4]},
              "embedders": {}}
    curves = {}
    for name, (embedder, threshold, backend) in embedders.items():
        say(f"scoring with {name}")
        policy = reconstruction_classes(config.gallery.reconstruction_for, backend, embedder.student is not None)
        # Thresholds set in the config are the config embedder's: another --embedder keeps its own, unset.
        frame = frame_setting(config.gallery.frame, backend, embedder.model_id, embedder.student is not None,
                              name.endswith("(config)") and config.gallery.plain_thresholds)
        report["embedders"][name], curves[name] = score(data, embedder, threshold, settings,
                                                        config.gallery.false_accept_rate or 0.01,
                                                        None if policy is None else list(policy), frame)
    for path in write(report, curves, Path(args.out)):
        print(f"wrote {path}")
    for name, result in report["embedders"].items():
        print(f"{name}: {target_line(result['share_of_clean'])}")
    return 0


def _embedder_settings(spec: str, flag: str, backends: tuple[str, ...] = ("dlib", "lbp_histogram")):
    """An eval's embedder named on the command line: one of ``backends`` or an ArcFace .onnx."""
    from streamer.config import parse_config
    from streamer.embed.arcface import ArcFaceConfig
    from streamer.errors import ConfigError

    if spec in backends:
        return parse_config({"embedder": {"backend": spec}}).embedder
    if Path(spec).suffix.lower() == ".onnx" and Path(spec).is_file():
        return ArcFaceConfig(backend="arcface", model=Path(spec))
    raise ConfigError(f"{flag}: {spec!r} is neither {', '.join(backends)} nor an existing ArcFace .onnx")


def _eval_embedders(args, config, stages, device):
    """(name, embedder, operating threshold, backend) for each --embedder (default: the config's own)."""
    from streamer.embed import build_embedder
    from streamer.errors import ConfigError

    specs = [(spec, config.embedder if spec == "config" else _embedder_settings(spec, "--embedder"))
             for spec in args.embedder or ["config"]]
    student, teacher = _eval_student(args.student)
    if student is not None and not any(_model_fingerprint(settings) == teacher for _, settings in specs):
        raise ConfigError(f"--student: {student} is a student of none of the --embedder models")
    for spec, settings in specs:
        # The student beside the model it was trained from, with that embedder's own settings (mirror and all).
        mine = student is not None and _model_fingerprint(settings) == teacher
        if spec == "config" and not mine:
            embedder = stages.embedder
        else:
            embedder = build_embedder(settings.model_copy(update={"student": student}) if mine else settings, device)
        if spec == "config":
            threshold = config.gallery.threshold or embedder.default_threshold
            yield f"{config.embedder.backend} (config)", embedder, threshold, config.embedder.backend
        else:
            name = Path(spec).stem if spec.endswith(".onnx") else spec
            yield name, embedder, embedder.default_threshold, settings.backend


def _eval_student(value: str | None) -> tuple[Path | None, str | None]:
    """--student's path and the fingerprint of the model it was trained from; one-line errors naming it."""
    from streamer.embed.student import student_file_teacher

    if not value:
        return None, None
    return Path(value), student_file_teacher(Path(value), "--student")


def _model_fingerprint(settings) -> str | None:
    """The fingerprint of the model file an embedder's settings name (a student records its teacher's)."""
    from streamer.embed.student import fingerprint
    from streamer.model_files import resolve_model_file

    if settings.backend == "arcface":
        return fingerprint(resolve_model_file(settings.model, "w600k_*.onnx"))
    if settings.backend == "dlib":
        from streamer.embed.dlib_resnet import descriptor_file

        return fingerprint(descriptor_file())
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamer", description=__doc__)
    parser.add_argument("--version", action="version", version=f"streamer {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    parser.add_argument("--traceback", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="process sources with a config")
    p.add_argument("config", help="YAML config file")
    p.add_argument("--source", action="append", default=[], metavar="URI",
                   help="video file or rtsp:// http(s):// URL; repeat for more streams")
    p.add_argument("--out", help="output folder (overrides output.dir)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    p.add_argument("--cluster", metavar="ADDRESS", help="run on the Ray cluster whose head is at ADDRESS (HOST:PORT, "
                   "or auto): one worker per share of the cameras; needs store.url (overrides cluster.address)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("cluster", help="a streamer run on a Ray cluster")
    cluster_sub = p.add_subparsers(dest="cluster_command", required=True)
    status = cluster_sub.add_parser("status", help="workers, their cameras, their rates and restarts")
    status.add_argument("--address", default="auto", help="the Ray cluster's head, HOST:PORT (default: auto)")
    status.add_argument("--json", action="store_true", help="as JSON")
    status.set_defaults(func=cmd_cluster_status)

    p = sub.add_parser("config", help="inspect configs")
    config_sub = p.add_subparsers(dest="config_command", required=True)
    show = config_sub.add_parser("show", help="print the effective config, passwords redacted")
    show.add_argument("config")
    show.set_defaults(func=cmd_config_show)

    p = sub.add_parser("doctor", help="which backends, devices and models are available, and why not")
    p.add_argument("--config", help="also load every stage of this config")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("models", help="list model packs, or 'models pull NAME'")
    p.add_argument("action", nargs="?", choices=["list", "pull"], default="list")
    p.add_argument("name", nargs="?")
    p.add_argument("--dir", help="model folder (default $STREAMER_MODELS or ~/.cache/streamer/models)")
    p.add_argument("--config", help="also show what this config uses")
    p.add_argument("--url", help="download from this address instead of the catalog's")
    p.add_argument("--mirror", help="base address of a mirror holding the catalog's files (digest still checked)")
    p.add_argument("--sha256", help="expected SHA-256 of the archive")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("demo", help="build the demo clip from packaged images and run the pipeline on it")
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--frames", type=int, default=120, help="clip length in frames (15 fps)")
    p.add_argument("--config", help=f"pipeline config (default {DEFAULT_DEMO_CONFIG} if present)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("data", help="build training data")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    faces = data_sub.add_parser("faces", help="align every face photo once (SCRFD's 5 points): the face bank")
    faces.add_argument("--faces", nargs="+", required=True, help="folders of face photos (one face each is used)")
    faces.add_argument("--detector-model", required=True, help="SCRFD .onnx giving the 5 landmarks")
    faces.add_argument("--out", required=True, help="bank folder")
    faces.set_defaults(func=cmd_data_faces)
    occ = data_sub.add_parser("occlusion", help="occluders composed onto a face bank: YOLO-seg dataset + pairs")
    occ.add_argument("--bank", required=True, help="face bank from 'streamer data faces'")
    occ.add_argument("--occluders", help="folder of occluder templates (masks/masks.cfg, *glass*.png, textures/)")
    occ.add_argument("--out", required=True, help="output folder")
    occ.add_argument("--per-face", type=int, default=2, help="samples per face (default 2)")
    occ.add_argument("--seed", type=int, default=0)
    occ.add_argument("--image-size", type=int, default=160, help="YOLO image size, px (default 160)")
    occ.add_argument("--limit", type=int, help="use at most this many faces (train + val), and photos of each "
                     "--labelled set")
    occ.add_argument("--no-pairs", action="store_true", help="skip the (occluded, original, mask) crops")
    occ.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    occ.add_argument("--labelled", action="append", default=[], metavar="KIND=DIR",
                     help="real faces with real occluder pixels: celebamaskhq=DIR or maskedfacenet=DIR (repeatable)")
    occ.add_argument("--detector-model", help="SCRFD .onnx aligning the --labelled faces")
    occ.set_defaults(func=cmd_data_occlusion)

    from streamer.gallery_cli import add_parser as add_gallery_parser

    add_gallery_parser(sub)

    p = sub.add_parser("train", help="train the project's models")
    train_sub = p.add_subparsers(dest="train_command", required=True)
    occ = train_sub.add_parser("occlusion", help="the occluder YOLO-seg model, from a model yaml (offline)")
    occ.add_argument("--data", required=True, help="data.yaml from 'streamer data occlusion'")
    occ.add_argument("--out", required=True, help="run folder (weights/, results.csv)")
    occ.add_argument("--model", default="yolo11n-seg.yaml",
                     help="model yaml (from scratch), or a .pt or ultralytics .onnx export to fine-tune")
    occ.add_argument("--lr", type=float, help="initial learning rate (default: ultralytics' choice)")
    occ.add_argument("--epochs", type=int, default=12)
    occ.add_argument("--imgsz", type=int, default=160)
    occ.add_argument("--batch", type=int, default=32)
    occ.add_argument("--device", default="cpu", help="cpu, 0 (first GPU), ...")
    occ.add_argument("--seed", type=int, default=0)
    occ.add_argument("--workers", type=int, default=2)
    occ.add_argument("--minutes", type=float, help="train for this long instead (epochs and LR schedule fitted to it)")
    occ.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    occ.set_defaults(func=cmd_train_occlusion)
    inp = train_sub.add_parser("inpainter", help="a face inpainter, on occluders composed onto a face bank")
    inp.add_argument("--bank", required=True, nargs="+", help="face banks from 'streamer data faces' (trained as one)")
    inp.add_argument("--occluders", help="folder of occluder templates (as for 'data occlusion')")
    inp.add_argument("--out", required=True, help="run folder (last.pt, best.pt, samples/, history.json)")
    inp.add_argument("--arch", choices=["pconv_unet", "dual_encoder"], default="pconv_unet")
    inp.add_argument("--base", type=int, default=32, help="channels of the first layer (default 32)")
    inp.add_argument("--size", type=int, default=128, help="crop size, px, a multiple of 32 (default 128)")
    inp.add_argument("--upsample", choices=["nearest", "bilinear"],
                     help="the decoder's upsampling (default: the --init's, else bilinear, the shipped v3's); nearest "
                     "(v1's) leaves an 8 px grid in large holes. An --init of the other kind is fine-tuned into this")
    inp.add_argument("--epochs", type=int, default=20)
    inp.add_argument("--minutes", type=float, help="train for this long instead (the LR schedule follows time)")
    inp.add_argument("--batch", type=int, default=32)
    inp.add_argument("--lr", type=float, default=2e-4)
    inp.add_argument("--device", default="cpu", help="cpu or cuda")
    inp.add_argument("--workers", type=int, default=2, help="data-composing processes")
    inp.add_argument("--seed", type=int, default=0)
    inp.add_argument("--identity-model", help="ArcFace-type .onnx for the perceptual, style and identity terms")
    inp.add_argument("--identity-weight", type=float, help="weight of the identity term (0: an ablation)")
    inp.add_argument("--exclude-like", nargs="+", default=[],
                     help="face banks whose people must not be trained on (the evaluation people), judged by "
                     "--identity-model")
    inp.add_argument("--gan", choices=["auto", "on", "off"], default="auto",
                     help="global + local discriminators (auto: on for dual_encoder)")
    inp.add_argument("--adversarial-weight", type=float,
                     help="weight of the adversarial term with --gan on (default 0.02)")
    inp.add_argument("--limit", type=int, help="use at most this many training faces")
    inp.add_argument("--samples-per-epoch", type=int, help="composed samples per epoch (default: one per face)")
    inp.add_argument("--log-every", type=int, default=50, help="steps between progress lines")
    inp.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    inp.add_argument("--init", help="start from the weights of this checkpoint (.pt) or of an inpainter ONNX this "
                     "project exported, e.g. the shipped one (a new schedule: fine-tuning)")
    inp.set_defaults(func=cmd_train_inpainter)

    emb = train_sub.add_parser("embedder", help="a mask-robust student of a face embedder (no labels)")
    emb.add_argument("--teacher", required=True, help="the gallery's embedder: an ArcFace-layout .onnx, or dlib "
                     "(dlib's ResNet descriptor)")
    emb.add_argument("--faces", required=True, nargs="+", help="face banks from 'streamer data faces'")
    emb.add_argument("--out", required=True, help="run folder (last.pt, best.pt, history.json, student.onnx)")
    emb.add_argument("--occluders", help="folder of occluder templates (as for 'data occlusion')")
    emb.add_argument("--exclude-like", nargs="+", default=[],
                     help="face banks whose people must not be trained on (the evaluation people)")
    emb.add_argument("--exclude-by", help="ArcFace-layout .onnx that judges --exclude-like and who is one person for "
                     "--contrast (default: the teacher; "
                     "needed for --teacher dlib, whose descriptors sit too close together to judge it)")
    emb.add_argument("--epochs", type=int, default=10)
    emb.add_argument("--minutes", type=float, help="train for this long instead (the LR schedule follows time)")
    emb.add_argument("--batch", type=int, default=32)
    emb.add_argument("--lr", type=float, default=5e-5)
    emb.add_argument("--clean-weight", type=float, default=1.0, help="weight of keeping clean faces in place")
    emb.add_argument("--contrast", type=float, default=0.0,
                     help="weight of the contrast term: an occluded face nearer its own target than any other "
                     "training face's (0: off)")
    emb.add_argument("--temperature", type=float, default=0.1, help="the contrast term's softmax temperature")
    emb.add_argument("--frozen-share", type=float, default=0.0,
                     help="share of the teacher's weights, first layers first, left as they are: faster steps, "
                     "less learnt (default 0: all trained)")
    emb.add_argument("--misalign", type=float, default=0.0,
                     help="share of the faces as seen cut by landmarks off by about what an occluder does to a "
                     "detector's, as the stream aligns occluded faces (0: every face aligned perfectly)")
    emb.add_argument("--mirror", action="store_true",
                     help="teach each face the teacher's embedding of it and its mirror image added, as a mirrored "
                          "gallery holds them (may be switched on when resuming)")
    emb.add_argument("--hide-occluders", type=float, default=0.0, metavar="SHARE",
                     help="share of the occluded faces shown with the occluder's pixels painted one flat colour, as "
                          "the stream then shows the student what its segmenter finds (0: none; may be switched on "
                          "when resuming)")
    emb.add_argument("--points", metavar="FILE", help="--teacher dlib: cut each face as the stream cuts dlib's chips, "
                     "the face as seen by the points of FILE (a student of dlib's predictor, 'streamer train points', "
                     "as embedder.student_points), the clean face by dlib's own (default: every face by the layout's)")
    emb.add_argument("--init", metavar="STUDENT.onnx", help="start from this student of the same teacher (a new run "
                     "that goes on teaching it) instead of from the teacher")
    emb.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    emb.add_argument("--workers", type=int, default=1, help="data-composing processes")
    emb.add_argument("--seed", type=int, default=0)
    emb.add_argument("--limit", type=int, help="use at most this many training faces")
    emb.add_argument("--samples-per-epoch", type=int, help="composed samples per epoch (default: one per face)")
    emb.add_argument("--log-every", type=int, default=50, help="steps between progress lines")
    emb.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    emb.set_defaults(func=cmd_train_embedder)

    pts = train_sub.add_parser("points", help="a student of dlib's 5-point shape predictor that places the points "
                               "under occluders (no labels)")
    pts.add_argument("--faces", required=True, nargs="+", help="face banks from 'streamer data faces'")
    pts.add_argument("--out", required=True, help="run folder (points.dat, report.json)")
    pts.add_argument("--occluders", help="folder of occluder templates (as for 'data occlusion')")
    pts.add_argument("--faces-per-bank", type=int, default=3000, help="training faces drawn from each bank, at most")
    pts.add_argument("--variants", type=int, default=3, help="samples composed of each face")
    pts.add_argument("--trees", type=int, default=500, help="trees per cascade level")
    pts.add_argument("--oversampling", type=int, default=10, help="dlib's random starting shapes per sample")
    pts.add_argument("--tree-depth", type=int, default=4)
    pts.add_argument("--seed", type=int, default=0)
    pts.add_argument("--threads", type=int, help="dlib trainer's threads (default: every core; 1: the caller's alone)")
    pts.set_defaults(func=cmd_train_points)

    det = train_sub.add_parser("detector",
                               help="an occlusion-robust student of a face detector: SCRFD or YuNet (no labels)")
    det.add_argument("--teacher", required=True, help="the SCRFD .onnx (with the 5 points) or YuNet .onnx the stream "
                     "detects with")
    det.add_argument("--faces", required=True, nargs="+", help="face banks from 'streamer data faces'")
    det.add_argument("--out", required=True, help="run folder (last.pt, best.pt, history.json, detector.onnx)")
    det.add_argument("--occluders", help="folder of occluder templates (as for 'data occlusion')")
    det.add_argument("--backgrounds", nargs="+", default=[], help="scenes around the faces: videos, images or "
                     "folders of images (default: each face's own edge, replicated, as a still photo is searched)")
    det.add_argument("--occluders-alone", type=float, default=0.0, metavar="SHARE",
                     help="share of the scene-alone canvases (with --backgrounds or --surroundings) showing occluders "
                     "with no face under them, which the student must not take for faces either (default 0)")
    det.add_argument("--surroundings", metavar="CELEBAMASKHQ",
                     help="a CelebAMask-HQ folder (images/, labels/): what surrounds the face of each training photo "
                     "(hair, clothes, what is behind) is half the scenes, so that the student learns that a smooth "
                     "texture a face's size is not one")
    det.add_argument("--canvas", type=int, default=256,
                     help="side of the square training inputs, px (a multiple of 32; a one-size export: its size)")
    det.add_argument("--epochs", type=int, default=10)
    det.add_argument("--minutes", type=float, help="train for this long instead (the LR schedule follows time)")
    det.add_argument("--batch", type=int, default=16)
    det.add_argument("--lr", type=float, default=1e-4)
    det.add_argument("--frozen-share", type=float, default=0.0,
                     help="share of the teacher's weights, first layers first, left as they are: faster steps")
    det.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    det.add_argument("--workers", type=int, default=1, help="data-composing processes")
    det.add_argument("--seed", type=int, default=0)
    det.add_argument("--limit", type=int, help="use at most this many training faces")
    det.add_argument("--samples-per-epoch", type=int, help="canvases per epoch (default: one per face)")
    det.add_argument("--log-every", type=int, default=50, help="steps between progress lines")
    det.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    det.set_defaults(func=cmd_train_detector)

    from streamer.bench.cli import add_parser as add_bench_parser

    add_bench_parser(sub)

    p = sub.add_parser("eval", help="measure the project's models")
    eval_sub = p.add_subparsers(dest="eval_command", required=True)
    ev = eval_sub.add_parser("inpainter", help="pixels and identity on held-out faces, OpenCV as the baseline")
    ev.add_argument("--bank", required=True, help="face bank (its test split is used)")
    ev.add_argument("--occluders", help="folder of occluder templates")
    ev.add_argument("--embedder", required=True, help="ArcFace-type .onnx for the identity figures, or dlib (dlib's "
                    "ResNet descriptor: an embedder no inpainter here was trained against)")
    ev.add_argument("--model", action="append", default=[], help=".onnx or .pt inpainter; repeat for more")
    ev.add_argument("--size", type=int, default=128, help="crop size, px (default 128)")
    ev.add_argument("--limit", type=int, help="faces at most")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    ev.add_argument("--json", help="also write the figures here")
    ev.set_defaults(func=cmd_eval_inpainter)

    ev = eval_sub.add_parser("occlusion", help="the occluder model on real faces, per class, and its precision gate")
    ev.add_argument("--model", action="append", required=True, help="YOLO-seg .onnx or .pt; repeat for more")
    ev.add_argument("--masked-faces", help="folder with with_mask/ and without_mask/ real photos")
    ev.add_argument("--celebamaskhq", help="CelebAMask-HQ folder (images/, labels/): eyeglasses and hat pixels")
    ev.add_argument("--maskedfacenet", help="MaskedFace-Net segmentation folder: face-mask pixels")
    ev.add_argument("--detector-model", required=True, help="SCRFD .onnx aligning the faces")
    ev.add_argument("--aizoo", help="AIZOO face-mask classifier folder, measured beside on the masked photos")
    ev.add_argument("--confidence", type=float, default=0.15, help="the lowest confidence considered")
    ev.add_argument("--choose-gate", action="store_true",
                    help="choose each class's gate on the val faces and write OUT/<model>.gate.json")
    ev.add_argument("--config", help="config whose pipeline.min_occluded_fraction decides synthetic pixels")
    ev.add_argument("--out", required=True, help="folder for occlusion.json, occlusion.md, cache/")
    ev.set_defaults(func=cmd_eval_occlusion)

    ev = eval_sub.add_parser("identity", help="is the right person named, across photos, per occluder and path")
    ev.add_argument("--faces", required=True, help="evaluation faces: DIR/<person>/*.jpg, never trained on")
    ev.add_argument("--config", help="pipeline config: its detector, occlusion, inpainter (and default embedder)")
    ev.add_argument("--embedder", action="append", default=[],
                    help="an ArcFace .onnx, dlib or lbp_histogram; repeat for more (default: the config's)")
    ev.add_argument("--student", help="a student .onnx of one of the --embedder models ('streamer train embedder')")
    ev.add_argument("--distractors", action="append", default=[],
                    help="folder of faces of other people (one identity per photo) for the larger galleries")
    ev.add_argument("--judge", help="an ArcFace .onnx or dlib that judges which distractors may be an evaluated "
                    "person (left out); default: the config's embedder. dlib at its own threshold leaves out most "
                    "faces, and keeps the ones unlike every probe")
    ev.add_argument("--occluders", help="folder of occluder templates (as for 'data occlusion')")
    ev.add_argument("--people", type=int, help="use at most this many people of --faces")
    ev.add_argument("--probes-per-person", type=int, default=3)
    ev.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000], help="gallery sizes (people)")
    ev.add_argument("--conditions", nargs="+", help="clean and occluder classes (default: all)")
    ev.add_argument("--probe-alignment", choices=["detector", "photo"], default="detector",
                    help="detector: each probe aligned by the detector's landmarks on it, as the stream does (a face "
                    "it misses is named for nobody); photo: by its clean photo's (the protocol before 2026-12-04)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    ev.add_argument("--out", required=True, help="folder for identity.json, identity.md, roc_*.png")
    ev.set_defaults(func=cmd_eval_identity)

    p = sub.add_parser("export", help="export a trained model for the stream's runtimes")
    export_sub = p.add_subparsers(dest="export_command", required=True)
    exp = export_sub.add_parser("inpainter", help="ONNX with a dynamic batch axis, checked against torch")
    exp.add_argument("checkpoint", help="best.pt / last.pt of 'streamer train inpainter'")
    exp.add_argument("--out", required=True, help="the .onnx to write")
    exp.set_defaults(func=cmd_export_inpainter)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except StreamerError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: one line unless asked for more
        if args.traceback or os.environ.get("STREAMER_TRACEBACK"):
            raise
        print(f"error: internal: {type(exc).__name__}: {redact(str(exc))} (rerun with --traceback)", file=sys.stderr)
        return 3
