"""Imports ultralytics so that it never pip-installs or downloads anything at run time.

The stream itself needs ultralytics only for a .pt YOLO checkpoint (a pickle nothing else can load);
.onnx exports run on the engine layer without it. Training and `doctor` use it too.
"""

from __future__ import annotations

import os
from pathlib import Path

from streamer.errors import ModelError
from streamer.model_files import one_line


def import_ultralytics():
    # Read by ultralytics at import time: no pip auto-install, no online checks or hub calls.
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ["YOLO_OFFLINE"] = "true"
    os.environ.setdefault("YOLO_VERBOSE", "false")
    import ultralytics
    from ultralytics.utils import SETTINGS

    try:
        SETTINGS.update({"sync": False})  # no analytics events
    except Exception:  # read-only settings file: ultralytics then keeps its defaults
        pass
    return ultralytics


def load_yolo(path: Path, task: str):
    """Loads a YOLO model from ``path`` only.

    ultralytics treats an unknown name as a hub asset to download, so the
    path must exist first; .pt checkpoints are pickles and are loaded only from
    the operator's configured path.
    """
    if not Path(path).is_file():
        raise ModelError(f"YOLO model file not found: {path}")
    import cv2

    threads = cv2.getNumThreads()
    try:
        ultralytics = import_ultralytics()
    except Exception as exc:  # a .pt checkpoint needs ultralytics (and torch) to unpickle it
        raise ModelError(f"cannot load YOLO model {path}: ultralytics is not importable "
                         f"({one_line(exc)})") from None
    # Importing ultralytics turns OpenCV's threading off (for its training data loaders); in the stream
    # that halves every OpenCV stage (Haar detection, resizing), so the stream keeps its own setting.
    cv2.setNumThreads(threads)
    try:
        return ultralytics.YOLO(str(path), task=task)
    except Exception as exc:
        raise ModelError(f"cannot load YOLO model {path}: {one_line(exc)}") from None
