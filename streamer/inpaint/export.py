"""ONNX export of a trained inpainter, with a dynamic batch axis, checked against torch.

    streamer export inpainter CHECKPOINT.pt --out MODEL.onnx
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from streamer.inpaint.nets import InpaintingNet, load_net

OPSET = 17


def export_onnx(net: InpaintingNet, out: Path) -> Path:
    import onnx

    net = net.eval().float()
    example = (torch.rand(2, 3, net.size, net.size), (torch.rand(2, 1, net.size, net.size) > 0.7).float())
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(net, example, str(out), input_names=["image", "hole"], output_names=["inpainted"],
                      dynamic_axes={"image": {0: "batch"}, "hole": {0: "batch"}, "inpainted": {0: "batch"}},
                      opset_version=OPSET, dynamo=False)
    model = onnx.load(str(out))
    for key, value in {"arch": net.arch, "base": str(net.base), "size": str(net.size),
                       "contract": "image (N,3,S,S) RGB [0,1], hole (N,1,S,S) 1=hidden -> inpainted (N,3,S,S)"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(out))
    return out


def parity(net: InpaintingNet, onnx_path: Path, batches=(1, 3, 7)) -> float:
    """Largest |torch - ONNX Runtime| over random images and holes at several batch sizes."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for n in batches:
        image = torch.rand(n, 3, net.size, net.size, generator=generator)
        hole = (torch.rand(n, 1, net.size, net.size, generator=generator) > 0.6).float()
        with torch.no_grad():
            expected = net(image, hole).numpy()
        [got] = session.run(None, {"image": image.numpy(), "hole": hole.numpy()})
        worst = max(worst, float(np.abs(expected - got).max()))
    return worst


def export_checkpoint(checkpoint: Path, out: Path) -> tuple[Path, float]:
    net, _ = load_net(checkpoint)
    export_onnx(net, out)
    return out, parity(net, out)
