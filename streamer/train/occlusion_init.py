"""A trainable YOLO-seg checkpoint rebuilt from an ultralytics ONNX export, to fine-tune a shipped model.

The project ships its occluder model as ONNX only (no pickle). ultralytics exports a fused network: each
convolution's batch norm is folded into its weights and a bias. Refining that model means unfolding it:

- the network is rebuilt from its architecture yaml, and every unfused convolution takes the fused weights;
- its batch norm is set so the pair computes exactly the fused convolution. For conv output z = W'x, with
  per-channel mean m and variance v measured on training images: running mean m, running variance v,
  scale sqrt(v + eps), shift m + b'. Then BN(z) = z + b' with running statistics (evaluation), and about the
  same with a batch's own statistics (training), so fine-tuning starts from the shipped model's behaviour
  rather than from a scale the batch statistics would impose.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamer.errors import ConfigError


def checkpoint_from_onnx(onnx_path: Path, architecture: str, images: list[np.ndarray], out: Path) -> Path:
    """Writes an ultralytics checkpoint (``out``) equivalent to ``onnx_path``; ``images`` (uint8 BGR, any
    square size) calibrate the batch norms. Returns ``out``."""
    import onnx
    import torch
    from onnx import numpy_helper

    from streamer.occlusion.yolo_seg import class_names_from_metadata, network_input
    from streamer.ultralytics_offline import import_ultralytics

    model_proto = onnx.load(str(onnx_path))
    metadata = {p.key: p.value for p in model_proto.metadata_props}
    names = class_names_from_metadata(metadata, onnx_path)
    imgsz = int(str(metadata.get("imgsz", "[160]")).strip("[]").split(",")[0])
    fused = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in model_proto.graph.initializer}

    import_ultralytics()
    from ultralytics.nn.modules import Conv
    from ultralytics.nn.tasks import SegmentationModel

    network = SegmentationModel(architecture, nc=len(names), verbose=False)
    network.names = dict(enumerate(names))
    convs = {name: module for name, module in network.named_modules() if isinstance(module, Conv)}
    state = network.state_dict()
    used = set()
    with torch.no_grad():
        for name, module in convs.items():
            weight, bias = fused.get(f"{name}.conv.weight"), fused.get(f"{name}.conv.bias")
            if weight is None or bias is None or weight.shape != module.conv.weight.shape:
                raise ConfigError(f"{onnx_path}: no fused weights for {name} of {architecture}; it is not an export "
                                  f"of that architecture")
            module.conv.weight.copy_(weight)
            used |= {f"{name}.conv.weight", f"{name}.conv.bias"}
        for key in state:  # plain convolutions (the heads' last layers) keep their own bias
            if key in fused and key not in used:
                if fused[key].shape != state[key].shape:
                    raise ConfigError(f"{onnx_path}: {key} is {tuple(fused[key].shape)}, {architecture} has "
                                      f"{tuple(state[key].shape)}")
                dict(network.named_parameters()).get(key, state[key]).data.copy_(fused[key])
                used.add(key)
        _calibrate(network, convs, fused, network_input(images, imgsz))
    missing = [k for k in fused if k not in used and not k.endswith("dfl.conv.weight")]
    if missing:
        raise ConfigError(f"{onnx_path}: {len(missing)} weights have no place in {architecture} (e.g. {missing[0]})")
    network.args = {"imgsz": imgsz, "task": "segment"}
    torch.save({"model": network.float(), "train_args": {"imgsz": imgsz, "task": "segment",
                                                          "model": architecture}, "epoch": -1,
                "date": None, "version": "streamer: from " + onnx_path.name}, out)
    return out


def _calibrate(network, convs: dict, fused: dict, batch: np.ndarray) -> None:
    """Each Conv's batch norm made the identity plus the fused bias, on the statistics of its output."""
    import torch

    stats = {}

    def measure(name):
        def hook(module, inputs, output):
            z = output.double()
            stats[name] = (z.mean(dim=(0, 2, 3)), z.var(dim=(0, 2, 3), unbiased=False))
        return hook

    network.eval()
    for name, module in convs.items():  # placeholders, so the forward pass runs the fused function already
        module.bn.running_mean.zero_()
        module.bn.running_var.fill_(1.0 - module.bn.eps)
        module.bn.weight.fill_(1.0)
        module.bn.bias.copy_(fused[f"{name}.conv.bias"])
    handles = [module.conv.register_forward_hook(measure(name)) for name, module in convs.items()]
    network(torch.from_numpy(batch))
    for handle in handles:
        handle.remove()
    for name, module in convs.items():
        mean, var = stats[name]
        bn = module.bn
        bn.running_mean.copy_(mean.float())
        bn.running_var.copy_(var.float())
        bn.weight.copy_(torch.sqrt(var + bn.eps).float())
        bn.bias.copy_((mean + fused[f"{name}.conv.bias"].double()).float())
