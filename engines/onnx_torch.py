"""An ONNX convolutional network as a differentiable torch module.

Training the inpainter needs gradients through a face embedder (the identity loss) and its
intermediate features (the perceptual and style losses). The real embedders come as ONNX files,
which ONNX Runtime can run but not differentiate; their graphs use a handful of operators, so this
module rebuilds them in torch: the initializers become parameters (frozen by default), the nodes
run in graph order. Unsupported operators are refused by name when the model is loaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED = {"Conv", "Clip", "Relu", "PRelu", "LeakyRelu", "Sigmoid", "Add", "Sub", "Mul", "BatchNormalization",
             "Flatten", "Gemm", "MatMul", "Reshape", "Constant", "Identity", "Dropout", "GlobalAveragePool"}


class OnnxConvNet(nn.Module):
    """``forward(x)`` gives the graph's first output; ``features(x, names)`` also the named intermediates;
    ``onnx_weights()`` the parameters under their ONNX initializer names (to write a retrained graph)."""

    def __init__(self, path: Path, trainable: bool = False):
        import onnx
        from onnx import numpy_helper

        super().__init__()
        model = onnx.load(str(path))
        graph = model.graph
        unsupported = sorted({n.op_type for n in graph.node} - SUPPORTED)
        if unsupported:
            raise ValueError(f"{path}: operators not supported by the torch rebuild: {', '.join(unsupported)}")
        self.params = nn.ParameterDict()
        self._names: dict[str, str] = {}  # ONNX tensor name -> parameter key
        # Trained or not, a batch norm's running statistics stay as they are (the net runs in inference
        # form), and integer tensors (shapes) are not weights.
        statistics = {name for n in graph.node if n.op_type == "BatchNormalization" for name in n.input[3:5]}
        for i, init in enumerate(graph.initializer):
            key = f"p{i}"
            value = torch.from_numpy(numpy_helper.to_array(init).copy())
            self.params[key] = nn.Parameter(value, requires_grad=trainable and value.is_floating_point()
                                            and init.name not in statistics)
            self._names[init.name] = key
        self._constants: dict[str, torch.Tensor] = {}
        self._nodes = []
        for node in graph.node:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "Constant":
                self._constants[node.output[0]] = torch.from_numpy(numpy_helper.to_array(attrs["value"]).copy())
                continue
            self._nodes.append((node.op_type, list(node.input), list(node.output), attrs))
        self.input_name = next(i.name for i in graph.input if i.name not in self._names)
        self.output_name = graph.output[0].name
        self.node_outputs = [outputs[0] for _, _, outputs, _ in self._nodes]
        # Where each value is read for the last time: it is freed there, keeping memory flat in training.
        self._last_read = {name: i for i, (_, inputs, _, _) in enumerate(self._nodes) for name in inputs}

    def onnx_weights(self) -> dict[str, np.ndarray]:
        return {name: self.params[key].detach().cpu().numpy() for name, key in self._names.items()}

    def _value(self, name: str, values: dict) -> torch.Tensor | None:
        if not name:
            return None
        if name in values:
            return values[name]
        if name in self._names:
            return self.params[self._names[name]]
        return self._constants[name]

    def features(self, x: torch.Tensor, names: list[str]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        values = {self.input_name: x}
        wanted = set(names)
        kept = []
        for index, (op, inputs, outputs, attrs) in enumerate(self._nodes):
            values[outputs[0]] = _run(op, [self._value(n, values) for n in inputs], attrs)
            if outputs[0] in wanted:
                kept.append(outputs[0])
            for name in inputs:
                if self._last_read.get(name) == index and name in values and name not in wanted:
                    del values[name]
        missing = wanted - set(kept)
        if missing:
            raise KeyError(f"no such intermediate values: {', '.join(sorted(missing))}")
        return values[self.output_name], [values[n] for n in names]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x, [])[0]


def _run(op: str, args: list, attrs: dict) -> torch.Tensor:
    if op == "Conv":
        x, weight, bias = (args + [None])[:3]
        pads = attrs.get("pads", [0, 0, 0, 0])
        if pads[0] != pads[2] or pads[1] != pads[3]:
            x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
            padding = 0
        else:
            padding = (pads[0], pads[1])
        return F.conv2d(x, weight, bias, attrs.get("strides", [1, 1]), padding, attrs.get("dilations", [1, 1]),
                        attrs.get("group", 1))
    if op == "Clip":
        low = args[1] if len(args) > 1 and args[1] is not None else attrs.get("min")
        high = args[2] if len(args) > 2 and args[2] is not None else attrs.get("max")
        return torch.clamp(args[0], None if low is None else float(low), None if high is None else float(high))
    if op == "Relu":
        return F.relu(args[0])
    if op == "PRelu":
        slope = args[1]
        return F.prelu(args[0], slope.reshape(-1)) if slope.numel() > 1 else F.prelu(args[0], slope.reshape(1))
    if op == "LeakyRelu":
        return F.leaky_relu(args[0], attrs.get("alpha", 0.01))
    if op == "Sigmoid":
        return torch.sigmoid(args[0])
    if op == "Add":
        return args[0] + args[1]
    if op == "Sub":
        return args[0] - args[1]
    if op == "Mul":
        return args[0] * args[1]
    if op == "BatchNormalization":
        x, scale, bias, mean, var = args[:5]
        return F.batch_norm(x, mean, var, scale, bias, False, 0.0, attrs.get("epsilon", 1e-5))
    if op == "Flatten":
        return torch.flatten(args[0], attrs.get("axis", 1))
    if op == "Gemm":
        a, b = args[0], args[1]
        a = a.t() if attrs.get("transA", 0) else a
        b = b.t() if attrs.get("transB", 0) else b
        out = attrs.get("alpha", 1.0) * (a @ b)
        return out + attrs.get("beta", 1.0) * args[2] if len(args) > 2 and args[2] is not None else out
    if op == "MatMul":
        return args[0] @ args[1]
    if op == "Reshape":
        shape = [int(v) for v in np.asarray(args[1].cpu()).reshape(-1)]
        # Exporters often write the batch of 1 they traced with: keep the real batch instead.
        return args[0].reshape(args[0].shape[0], *shape[1:])
    if op in ("Identity", "Dropout"):
        return args[0]
    if op == "GlobalAveragePool":
        return args[0].mean(dim=(2, 3), keepdim=True)
    raise ValueError(f"unsupported operator {op}")
