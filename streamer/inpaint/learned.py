"""The project's learned inpainters in the stream: one network contract, three runtimes.

An ``.onnx`` export runs on TensorRT where ``tensorrt`` and a GPU exist (an FP16 engine with a batch
1..max_batch profile, built once and cached), else on ONNX Runtime or rebuilt in torch as
``engine.onnx_runtime`` decides; a ``.pt`` training checkpoint runs on torch. torch on a GPU runs in FP16
with CUDA graphs. Crops of any aligned size are resized to the
network's size and back, and only the (slightly grown) occluded pixels are replaced. A face the camera saw
in grey (a night-time infrared camera) gets a grey fill: the networks, trained mostly on colour, tint it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field, field_validator

from engines import Device, open_engine
from engines.base import resolve_backend
from streamer.config_base import ExistingPath, StrictModel
from streamer.errors import ModelError
from streamer.inpaint.masks import grow
from streamer.model_files import warm_up

DEFAULT_MODEL = Path(__file__).parent / "weights" / "inpainter-pconv-unet-128.onnx"


class LearnedInpaintConfig(StrictModel):
    backend: Literal["learned"] = "learned"
    model: ExistingPath = Field(DEFAULT_MODEL, description="an .onnx export, or a .pt checkpoint of 'train inpainter'")
    runtime: Literal["auto", "tensorrt", "onnxruntime", "torch"] = Field(
        "auto", description="auto: an .onnx on TensorRT on a GPU with tensorrt, else as engine.onnx_runtime decides; "
        "a .pt on torch")
    fp16: bool = Field(True, description="half precision on a GPU (TensorRT, torch)")
    cuda_graphs: bool = Field(True, description="torch on a GPU: replay captured CUDA graphs")
    max_batch: int = Field(32, ge=1, le=1024, description="faces per network call (and the TensorRT profile's max)")
    dilate_px: int = Field(2, ge=0, le=10, description="grow the mask so occluder edges are replaced too")

    @field_validator("model")
    @classmethod
    def _known_format(cls, path):
        if path.suffix.lower() not in (".onnx", ".pt"):
            raise ValueError(f"expected an .onnx export or a .pt checkpoint, got {path.name}")
        return path


class LearnedInpainter:
    def __init__(self, config: LearnedInpaintConfig, device: Device):
        self._config = config
        self.max_batch = config.max_batch
        path = config.model
        try:
            if path.suffix.lower() == ".pt":
                self.engine, self.size, arch = _torch_engine(path, config, device)
            else:
                self.engine, self.size, arch = _onnx_engine(path, config, device)
        except Exception as exc:  # a corrupt file fails in protobuf, torch or a runtime: all mean "bad model"
            raise ModelError(f"cannot load inpainter {path}: {type(exc).__name__}: {exc}") from None
        self.description = f"learned {arch} ({path.name}, {self.size} px) on {self.engine.backend}, {device}"
        self._warm_up(path)

    def _warm_up(self, path: Path) -> None:
        """One tiny batch now, so the first occluded face does not pay the runtime's first-call set-up
        (ONNX Runtime's allocations, cuDNN's algorithm search, a CUDA graph's capture)."""
        warm_up(path, lambda: self.inpaint(np.zeros((1, self.size, self.size, 3), np.uint8),
                                           np.ones((1, self.size, self.size), bool)))

    def inpaint(self, crops: np.ndarray, masks: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return crops.copy()
        holes = grow(masks, self._config.dilate_px)
        image, hole = network_input(crops, holes, self.size)
        [out] = self.engine.run({"image": image, "hole": hole})[:1]
        return paste_output(out, crops, holes)


def network_input(crops: np.ndarray, holes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, S, S, 3) uint8 BGR + (n, S, S) bool -> image (n, 3, size, size) RGB [0, 1], hole (n, 1, size, size)."""
    n, s = crops.shape[:2]
    if s != size:
        crops = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_LINEAR if size > s else cv2.INTER_AREA)
                          for c in crops])
        # Any sub-pixel of a hole makes the resized pixel a hole: better one pixel too many than a fringe left.
        holes = np.stack([cv2.resize(h.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA) for h in holes])
    image = np.ascontiguousarray(crops[..., ::-1].transpose(0, 3, 1, 2), np.float32) / 255.0
    hole = (holes > 0.01).astype(np.float32)[:, None]
    return image, hole


def paste_output(out: np.ndarray, crops: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """The network's (n, 3, size, size) RGB [0, 1] back at the crops' size, only inside the holes."""
    s = crops.shape[1]
    bgr = (np.clip(out.transpose(0, 2, 3, 1)[..., ::-1], 0, 1) * 255.0 + 0.5).astype(np.uint8)
    if bgr.shape[1] != s:
        bgr = np.stack([cv2.resize(b, (s, s), interpolation=cv2.INTER_AREA if bgr.shape[1] > s else cv2.INTER_LINEAR)
                        for b in bgr])
    grey = seen_in_grey(crops, holes)
    if grey.any():
        bgr[grey] = np.repeat(cv2.cvtColor(bgr[grey].reshape(-1, s, 3), cv2.COLOR_BGR2GRAY)[..., None], 3, axis=-1) \
            .reshape(bgr[grey].shape)
    return np.where(holes[..., None], bgr, crops)


# Grey levels, the 95th percentile of the smoothed colour differences. Of the 1,629 photos of v1's face bank: 16
# black-and-white at 0, 8 toned black-and-white prints at 4-7.3, then colour from 11 (the median is 53).
GREY_CHROMA = 8.0


def seen_in_grey(crops: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """(n,) bool: the camera's own pixels of each crop (outside its hole) are grey. Judged on the colour
    differences smoothed over 5 px, so that noise added to each channel apart does not read as colour, and
    away from the hole, so that the occluder's colour does not either."""
    result = np.zeros(len(crops), bool)
    near = np.ones((5, 5), np.uint8)
    for i, (crop, hole) in enumerate(zip(crops, holes)):
        pixels = crop.astype(np.float32)
        chroma = np.stack([pixels[..., 2] - pixels[..., 1], pixels[..., 0] - pixels[..., 1]], -1)
        chroma = cv2.blur(chroma, (5, 5))[cv2.dilate(hole.astype(np.uint8), near) == 0]
        result[i] = len(chroma) > 0 and float(np.percentile(np.abs(chroma), 95)) <= GREY_CHROMA
    return result


def _torch_engine(path: Path, config: LearnedInpaintConfig, device: Device):
    if config.runtime not in ("auto", "torch"):
        raise ValueError(f"runtime {config.runtime} needs an .onnx export; a .pt checkpoint runs on torch")
    from engines.torch_engine import TorchEngine
    from streamer.inpaint.nets import load_net

    net, _ = load_net(path)
    engine = TorchEngine(net, device, ["image", "hole"], ["inpainted"], fp16=config.fp16,
                         cuda_graphs=config.cuda_graphs)
    return engine, net.size, net.arch


def _onnx_engine(path: Path, config: LearnedInpaintConfig, device: Device):
    from streamer.model_files import onnx_header

    inputs, metadata = onnx_header(path)
    if set(inputs) != {"image", "hole"}:
        raise ValueError(f"expected inputs 'image' and 'hole' (an export of 'streamer export inpainter'), "
                         f"got {', '.join(inputs)}")
    size = inputs["image"][2] if isinstance(inputs["image"][2], int) else 0
    arch = metadata.get("arch", "inpainter")
    options = {}
    backend = resolve_backend(path, device, config.runtime)
    if backend == "tensorrt":
        from engines.tensorrt_engine import BuildSpec

        options["spec"] = BuildSpec(max_batch=config.max_batch, opt_batch=max(1, config.max_batch // 2),
                                    fp16=config.fp16)
    elif backend == "torch":
        options.update(fp16=config.fp16, cuda_graphs=config.cuda_graphs)
    return open_engine(path, device, backend=backend, **options), size, arch
