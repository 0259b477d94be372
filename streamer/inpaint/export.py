"""ONNX export of a trained inpainter, with a dynamic batch axis, checked against torch; and the way back
(``net_from_onnx``), so that a shipped ONNX can be fine-tuned (``streamer train inpainter --init MODEL.onnx``).

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
    for key, value in {"arch": net.arch, "base": str(net.base), "size": str(net.size), "upsample": net.upsample,
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


def net_from_onnx(path: Path) -> InpaintingNet:
    """The network of an inpainter ONNX that ``export_onnx`` wrote: its weights read back by name, and checked
    against ONNX Runtime. A ValueError naming ``path`` if it is not one."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf's errors name no file
        raise ValueError(f"{path} is not an ONNX file ({type(exc).__name__})") from None
    meta = {p.key: p.value for p in model.metadata_props}
    if not {"arch", "base", "size"} <= meta.keys():
        raise ValueError(f"{path} is not an inpainter exported by 'streamer export inpainter' (no arch, base and "
                         f"size in its metadata)")
    try:
        net = InpaintingNet(meta["arch"], int(meta["base"]), int(meta["size"]), meta.get("upsample", "nearest"))
    except ValueError as exc:
        raise ValueError(f"{path}: its metadata names no inpainter this version builds ({exc})") from None
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    # torch's export keeps the parameters' names, except a bias added outside the convolution (the partial
    # convolution adds its own): that one is a constant "onnx::Add_N", added in its module's scope.
    for node in model.graph.node:
        if node.op_type == "Add" and len(node.input) == 2 and node.input[1].startswith("onnx::") \
                and node.input[1] in weights:
            scope = node.name.rsplit("/", 1)[0].strip("/").replace("/", ".")
            weights.setdefault(f"{scope}.bias", weights[node.input[1]].reshape(-1))
    state = net.state_dict()
    missing = [k for k in state if k not in weights and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"{path}: {len(missing)} of the {meta['arch']}'s weights are not in its graph "
                         f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
    net.load_state_dict({k: torch.from_numpy(weights[k].copy()).reshape(v.shape) if k in weights else v
                         for k, v in state.items()})
    worst = parity(net.eval(), path)
    if worst > 1e-4:  # a weight read back under the wrong name
        raise ValueError(f"{path}: its weights read back differ from ONNX Runtime's output by {worst:.2g}")
    return net
