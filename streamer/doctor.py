"""`streamer doctor`: which backends, devices and models are available here, and why not."""

from __future__ import annotations

import importlib
import platform
from dataclasses import dataclass

from engines.device import cuda_status, select_device
from engines.tensorrt_engine import tensorrt_status


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _version(module: str) -> Check:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:
        return Check(module, False, f"not importable: {type(exc).__name__}: {exc}")
    return Check(module, True, getattr(mod, "__version__", "installed"))


def environment_checks() -> list[Check]:
    checks = [Check("python", True, platform.python_version())]
    checks += [_version(m) for m in ("numpy", "cv2", "av", "onnxruntime", "torch", "torchvision", "dlib",
                                     "face_recognition_models")]
    from streamer.ultralytics_offline import import_ultralytics

    try:
        checks.append(Check("ultralytics", True, f"{import_ultralytics().__version__} (offline, no auto-install)"))
    except Exception as exc:
        checks.append(Check("ultralytics", False, f"not importable: {exc}"))
    ok, detail = cuda_status()
    checks.append(Check("cuda (torch)", ok, detail))
    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
        checks.append(Check("onnxruntime providers", True, ", ".join(providers)))
    except Exception as exc:
        checks.append(Check("onnxruntime providers", False, str(exc)))
    ok, detail = tensorrt_status()
    checks.append(Check("tensorrt", ok, detail))
    try:
        import av

        checks.append(Check("h264 encoder (libx264)", "libx264" in av.codecs_available, "via PyAV's FFmpeg"))
    except Exception as exc:
        checks.append(Check("h264 encoder (libx264)", False, str(exc)))
    device = select_device("auto")
    checks.append(Check("device chosen (auto)", True, f"{device} - {device.reason}"))
    from engines import onnx_backend

    checks.append(Check("ONNX models run on (auto)", True, onnx_backend(device) + (
        "" if onnx_backend(device) == "onnxruntime" else " (each graph rebuilt as a torch module)")))
    return checks


def stage_checks(config) -> list[Check]:
    """Builds every configured stage, which loads its model: the real test that it works here. The store
    is not opened: a check must not enrol, prune or create anything in a production store."""
    from streamer.identify import store_path
    from streamer.stages import Stages

    try:
        device = config.engine.select_device()
    except Exception as exc:
        return [Check("engine.device", False, str(exc))]
    try:
        stages = Stages.build(config, device)
    except Exception as exc:
        return [Check("stages", False, f"{type(exc).__name__}: {exc}")]
    checks = [Check(line.split(":", 1)[0], True, line.split(":", 1)[1].strip()) for line in stages.describe()]
    if config.store.url is not None:
        from streamer.store.postgres import safe_location

        return checks + [Check("store", True, f"{safe_location(config.store.url)} (PostgreSQL; not opened by doctor)")]
    path = store_path(config.store, config.output.dir)
    state = "exists" if path.exists() else "will be created by the first run"
    return checks + [Check("store", True, f"{path} ({state}; not opened by doctor)")]


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    return "\n".join(f"{'ok ' if c.ok else 'NO '} {c.name:<{width}}  {c.detail}" for c in checks)
