"""An ONNX graph as a torch module: every model of the pipeline on CUDA without ONNX Runtime's CUDA build
or TensorRT, and the embedders as differentiable networks for training.

The initializers become parameters (frozen by default), the nodes run in graph order. Two things make the
module fit for a GPU's fast paths:

- **Shape arithmetic stays on the host, and is worked out once per input shape.** Exporters write
  ``Shape -> Gather -> Concat -> Reshape`` chains, anchor grids (``Range``) and ``ConstantOfShape`` masks.
  Values that depend on the inputs' shapes but not their data are computed on the first call for a shape
  and kept (on the host for shape arguments, on the device for arithmetic). Later calls run only the nodes
  that touch data, so a call makes no host round trip and can be captured in a CUDA graph.
- **Reduced precision is the module's own**: ``Cast`` to a float type casts to the dtype of the inputs, so
  a module moved to float16 stays float16 end to end.

A graph exported with a fixed batch of N (MobileFaceNet's is 1) runs at any batch: a ``Reshape`` to a
constant shape that starts with N keeps the real batch instead (``free_batch``). Unsupported operators
are refused by name when the model is loaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engines.base import TensorSpec

# Argument positions an operator reads as host integers (shapes, axes, sizes), never as device tensors.
HOST_ARGS = {"Clip": {1, 2}, "Reshape": {1}, "Expand": {1}, "Resize": {1, 2, 3}, "Slice": {1, 2, 3, 4}, "Split": {1},
             "Pad": {1, 2, 3},
             "Unsqueeze": {1}, "Squeeze": {1}, "ConstantOfShape": {0}, "Range": {0, 1, 2}}
# ONNX TensorProto element types -> torch dtypes.
_DTYPES = {1: torch.float32, 2: torch.uint8, 3: torch.int8, 5: torch.int16, 6: torch.int32, 7: torch.int64,
           9: torch.bool, 10: torch.float16, 11: torch.float64, 16: torch.bfloat16}
_FLOATS = {1, 10, 11, 16}
# Axis attributes' defaults where the spec gives one (Softmax's depends on the opset: see _softmax).
_DEFAULT_AXIS = {"Gather": 0, "Split": 0, "Flatten": 1}


class OnnxGraph(nn.Module):
    """``forward(*inputs)`` gives the graph's outputs, a tuple in the graph's order.

    ``input_names`` / ``output_names`` are the graph's; ``features(inputs, names)`` also gives named
    intermediate values; ``onnx_weights()`` the parameters under their ONNX initializer names (to write a
    retrained graph); ``weights_in_use_order()`` the trainable parameters in the order the graph reads them.
    """

    def __init__(self, path: str | Path, trainable: bool = False, free_batch: bool = True):
        import onnx
        from onnx import numpy_helper

        super().__init__()
        model = onnx.load(str(path))
        graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        unsupported = sorted({n.op_type for n in graph.node} - set(_OPS) - {"Constant"})
        if unsupported:
            raise ValueError(f"{path}: operators not supported by the torch rebuild: {', '.join(unsupported)}")
        self.params = nn.ParameterDict()
        self._names: dict[str, str] = {}  # ONNX tensor name -> parameter key
        self._host: dict[str, torch.Tensor] = {}  # integer and boolean constants: shapes, axes, indices
        # Trained or not, a batch norm's running statistics stay as they are (the net runs in inference
        # form), and integer tensors are not weights.
        statistics = {name for n in graph.node if n.op_type == "BatchNormalization" for name in n.input[3:5]}
        for init in graph.initializer:
            self._add_constant(init.name, numpy_helper.to_array(init), trainable and init.name not in statistics)
        self._nodes: list[tuple[str, list[str], list[str], dict]] = []
        for node in graph.node:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "Constant":
                self._add_constant(node.output[0], _constant_value(attrs, numpy_helper), False)
                continue
            for key, value in attrs.items():
                if isinstance(value, onnx.TensorProto):
                    attrs[key] = torch.from_numpy(numpy_helper.to_array(value).copy())
            if node.op_type == "Split" and "split" not in attrs and len(node.input) < 2:
                attrs.setdefault("num_outputs", len(node.output))  # equal parts, as many as it has outputs
            self._nodes.append((node.op_type, list(node.input), list(node.output), attrs))
        known = set(self._names) | set(self._host)
        self.input_names = [i.name for i in graph.input if i.name not in known]
        self.output_names = [o.name for o in graph.output]
        self.declared_inputs = [TensorSpec.of_onnx(i) for i in graph.input if i.name not in known]
        self.declared_outputs = [TensorSpec.of_onnx(o) for o in graph.output]
        self.node_outputs = [outputs[0] for _, _, outputs, _ in self._nodes]
        # Which nodes depend on the inputs' data; the others depend at most on their shapes (through Shape), or
        # on nothing, and are worked out once per input shape. A node reading a trainable weight stays in the
        # data path, for its gradient.
        data = set(self.input_names) | {n for n, key in self._names.items() if self.params[key].requires_grad}
        self._static: set[int] = set()
        for index, (op, inputs, outputs, _) in enumerate(self._nodes):
            if op in ("Shape", "Size") or not any(name in data for name in inputs):
                self._static.add(index)
            else:
                data.update(outputs)
        self._data = data  # the values that depend on the inputs' data
        self._weights_on_host: dict[str, torch.Tensor] = {}  # frozen weights read as shapes, scales or bounds
        first = graph.input[[i.name for i in graph.input].index(self.input_names[0])]
        batch = first.type.tensor_type.shape.dim[0] if first.type.tensor_type.shape.dim else None
        traced = batch.dim_value if batch is not None and batch.dim_value > 0 else None
        self._traced_batch = traced if free_batch and traced and self._batch_stays_apart(traced) else None
        self.batch_is_free = self._traced_batch is not None
        self.metadata = {p.key: p.value for p in model.metadata_props}
        # Where each value is read for the last time: it is freed there, keeping memory flat in training.
        self._last_read = {name: i for i, (_, inputs, _, _) in enumerate(self._nodes) for name in inputs}
        self._plans: dict[tuple, dict[str, torch.Tensor]] = {}

    def _batch_stays_apart(self, traced: int) -> bool:
        """Whether a graph exported at a fixed batch of ``traced`` keeps the samples of a larger batch apart: no
        node on the data path moves, joins, splits or picks along axis 0, and every constant Reshape target there
        starts with the traced batch (which ``_reshape`` replaces with the real one). A graph that fails this
        runs at its own batch only."""
        for index, (op, inputs, _, attrs) in enumerate(self._nodes):
            if index in self._static:
                continue  # shape arithmetic
            axis = attrs.get("axis", -1 if op == "Softmax" and self.opset >= 13 else _DEFAULT_AXIS.get(op, 1))
            if op == "Transpose" and attrs.get("perm", [1])[0] != 0:
                return False
            if op in ("Concat", "Split", "Gather", "Flatten") and axis <= 0:
                return False  # along the batch, or a negative axis that may reach it
            if op == "Softmax" and (axis == 0 or axis < -1 or self.opset < 13):
                return False
            if op in ("Slice", "Squeeze", "Unsqueeze", "Expand", "ConstantOfShape", "Range"):
                return False
            if op in ("MatMul", "Gemm") and len(inputs) > 1 and inputs[1] in self._data:
                return False  # the data on the right: its rows (the batch) are mixed
            if op == "Reshape" and not (inputs[1] in self._host
                                        and _ints(self._host[inputs[1]])[:1] in ([traced], [0])):
                return False
        return True

    def _add_constant(self, name: str, value: np.ndarray, trainable: bool) -> None:
        tensor = torch.from_numpy(np.array(value, copy=True))
        if not tensor.is_floating_point():
            self._host[name] = tensor
            return
        key = f"p{len(self.params)}"
        self.params[key] = nn.Parameter(tensor, requires_grad=trainable)
        self._names[name] = key

    def onnx_weights(self) -> dict[str, np.ndarray]:
        return {name: self.params[key].detach().cpu().numpy() for name, key in self._names.items()}

    def weights_in_use_order(self) -> list[nn.Parameter]:
        ordered: dict[str, nn.Parameter] = {}
        for _, inputs, _, _ in self._nodes:
            for name in inputs:
                key = self._names.get(name)
                if key is not None and self.params[key].requires_grad:
                    ordered.setdefault(key, self.params[key])
        return list(ordered.values())

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values = self._evaluate(inputs, set())
        return tuple(values[name] for name in self.output_names)

    def features(self, inputs: torch.Tensor | tuple, names: list[str]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The first output and the named intermediate values."""
        values = self._evaluate(inputs if isinstance(inputs, tuple) else (inputs,), set(names))
        missing = set(names) - set(values)
        if missing:
            raise KeyError(f"no such intermediate values: {', '.join(sorted(missing))}")
        return values[self.output_names[0]], [values[n] for n in names]

    def _evaluate(self, inputs: tuple, wanted: set[str]) -> dict[str, torch.Tensor]:
        if len(inputs) != len(self.input_names):
            raise ValueError(f"expected {len(self.input_names)} inputs ({', '.join(self.input_names)}), "
                             f"got {len(inputs)}")
        lead = inputs[0]
        compute = lead.dtype if lead.is_floating_point() else next(iter(self.params.values())).dtype
        key = tuple((tuple(x.shape), x.dtype, x.device) for x in inputs)
        plan = self._plans.get(key)
        recording = plan is None
        if recording:
            plan = {}
        context = _Context(lead.device, compute, self._traced_batch, self.opset)
        shapes_only = _Context(lead.device, compute, None, self.opset)  # shape arithmetic keeps its own batch
        values: dict[str, torch.Tensor] = dict(zip(self.input_names, inputs))
        keep = wanted | set(self.output_names)
        for index, (op, names, outputs, attrs) in enumerate(self._nodes):
            static = index in self._static
            if static and not recording:
                continue
            host = HOST_ARGS.get(op, ())
            args = [self._value(name, values, plan, context, position in host or static)
                    for position, name in enumerate(names)]
            if static:
                args = _same_device(args)
            results = _run(op, args, attrs, shapes_only if static else context)
            for name, value in zip(outputs, results if isinstance(results, tuple) else (results,)):
                # A value worked out once per shape lives in the plan alone: read from there, it is on the host
                # for shape arguments and copied to the device for the rest, on this call as on later ones.
                (plan if static else values)[name] = value
            for name in names:
                if self._last_read.get(name) == index and name in values and name not in keep:
                    del values[name]
        if recording:
            self._plans[key] = plan
        for name in wanted - set(values):
            if name in plan:
                values[name] = plan[name]
        return values

    def _value(self, name: str, values: dict, plan: dict, context: _Context, host: bool) -> torch.Tensor | None:
        """A node's argument: an input or computed value, a weight, or a constant; a constant or a value worked
        out once per shape is read on the host where ``host``, else as a device copy in the compute dtype
        (made once, on the first call for the shape: never inside a captured graph)."""
        if not name:
            return None
        if name in values:
            return values[name]
        if name in self._names:
            weight = self.params[self._names[name]]
            if not host or weight.requires_grad:
                return weight
            # A frozen weight read as a bound, a scale or by shape arithmetic: a host copy, made on the first call,
            # so no later call (a captured one) copies from the device.
            copy = self._weights_on_host.get(name)
            if copy is None:
                copy = self._weights_on_host[name] = weight.detach().to("cpu", torch.float32)
            return copy
        if name in plan:
            value = plan[name]
        else:
            value = self._host[name]
        if host or value.device == context.device and not value.is_floating_point():
            return value
        copy_key = f"{name}@device"
        if copy_key not in plan:
            dtype = context.float_dtype if value.is_floating_point() else value.dtype
            plan[copy_key] = value.to(context.device, dtype)
        return plan[copy_key]


class OnnxConvNet(OnnxGraph):
    """A single-input network whose ``forward(x)`` gives its first output (an embedder, for training)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x, [])[0]


class _Context:
    __slots__ = ("device", "float_dtype", "traced_batch", "opset")

    def __init__(self, device: torch.device, float_dtype: torch.dtype, traced_batch: int | None, opset: int):
        self.device, self.float_dtype, self.traced_batch, self.opset = device, float_dtype, traced_batch, opset


def _constant_value(attrs: dict, numpy_helper) -> np.ndarray:
    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                       ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype)
    raise ValueError(f"unsupported Constant attributes: {', '.join(attrs)}")


def _same_device(args: list) -> list:
    """A shape-only node's arguments on one device: the host, unless one is a value already on a GPU."""
    target = next((a.device for a in args if isinstance(a, torch.Tensor) and a.device.type != "cpu"), None)
    if target is None:
        return args
    return [a.to(target) if isinstance(a, torch.Tensor) else a for a in args]


def _ints(value) -> list[int]:
    return [int(v) for v in value.reshape(-1).tolist()]


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _pads(attrs: dict, spatial: int = 2) -> tuple[list[int], bool]:
    """ONNX pads (begins..., ends...) -> torch's symmetric padding, or the F.pad sequence when they differ."""
    pads = list(attrs.get("pads", [0] * 2 * spatial))
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise ValueError(f"auto_pad {attrs['auto_pad']!r} is not supported by the torch rebuild")
    begins, ends = pads[:spatial], pads[spatial:]
    if begins == ends:
        return begins, False
    sequence = []
    for begin, end in zip(reversed(begins), reversed(ends)):
        sequence += [begin, end]
    return sequence, True


def _conv(args, attrs, context):
    x, weight, bias = (args + [None])[:3]
    padding, asymmetric = _pads(attrs)
    if asymmetric:
        x, padding = F.pad(x, padding), 0
    return F.conv2d(x, weight, bias, attrs.get("strides", [1, 1]), padding, attrs.get("dilations", [1, 1]),
                    attrs.get("group", 1))


def _conv_transpose(args, attrs, context):
    x, weight, bias = (args + [None])[:3]
    padding, asymmetric = _pads(attrs)
    if asymmetric or "output_shape" in attrs:
        raise ValueError("ConvTranspose with asymmetric pads or output_shape is not supported by the torch rebuild")
    strides, extra = attrs.get("strides", [1, 1]), attrs.get("output_padding", [0, 0])
    return F.conv_transpose2d(x, weight, bias, strides, padding, extra, attrs.get("group", 1),
                              attrs.get("dilations", [1, 1]))


def _pool(args, attrs, context, kind):
    x = args[0]
    padding, asymmetric = _pads(attrs)
    kernel, strides = attrs["kernel_shape"], attrs.get("strides", [1, 1])
    ceil = bool(attrs.get("ceil_mode", 0))
    if kind == "max":
        if asymmetric:
            x, padding = F.pad(x, padding, value=float("-inf")), 0
        return F.max_pool2d(x, kernel, strides, padding, attrs.get("dilations", [1, 1]), ceil)
    if asymmetric:
        raise ValueError("AveragePool with asymmetric pads is not supported by the torch rebuild")
    return F.avg_pool2d(x, kernel, strides, padding, ceil, bool(attrs.get("count_include_pad", 0)))


def _clip(args, attrs, context):
    low = args[1] if len(args) > 1 and args[1] is not None else attrs.get("min")
    high = args[2] if len(args) > 2 and args[2] is not None else attrs.get("max")
    return torch.clamp(args[0], None if low is None else float(low), None if high is None else float(high))


def _prelu(args, attrs, context):
    slope = args[1]
    return F.prelu(args[0], slope.reshape(-1)) if slope.numel() > 1 else F.prelu(args[0], slope.reshape(1))


def _batch_norm(args, attrs, context):
    x, scale, bias, mean, var = args[:5]
    return F.batch_norm(x, mean, var, scale, bias, False, 0.0, attrs.get("epsilon", 1e-5))


def _gemm(args, attrs, context):
    a, b = args[0], args[1]
    a = a.t() if attrs.get("transA", 0) else a
    b = b.t() if attrs.get("transB", 0) else b
    out = attrs.get("alpha", 1.0) * (a @ b)
    return out + attrs.get("beta", 1.0) * args[2] if len(args) > 2 and args[2] is not None else out


def _reshape(args, attrs, context):
    x, shape = args[0], _ints(args[1])
    if not attrs.get("allowzero", 0):
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    # Exporters write the batch they traced with: a graph traced at batch N keeps the real batch instead.
    if context.traced_batch and shape and shape[0] == context.traced_batch and x.shape[0] != context.traced_batch:
        shape[0] = x.shape[0]
    return x.reshape(shape)


def _flatten(args, attrs, context):
    x = args[0]
    axis = _axis(attrs.get("axis", 1), x.dim())
    return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)


def _shape(args, attrs, context):
    shape = torch.tensor(list(args[0].shape), dtype=torch.int64)
    start, end = attrs.get("start", 0), attrs.get("end")
    return shape[start:end]


def _gather(args, attrs, context):
    data, indices = args
    axis = _axis(attrs.get("axis", 0), data.dim())
    indices = indices.to(data.device)
    indices = torch.where(indices < 0, indices + data.shape[axis], indices)
    flat = torch.index_select(data, axis, indices.reshape(-1))
    return flat.reshape((*data.shape[:axis], *indices.shape, *data.shape[axis + 1:]))


def _unsqueeze(args, attrs, context):
    x = args[0]
    axes = _ints(args[1]) if len(args) > 1 and args[1] is not None else list(attrs["axes"])
    rank = x.dim() + len(axes)
    for axis in sorted(_axis(a, rank) for a in axes):
        x = x.unsqueeze(axis)
    return x


def _squeeze(args, attrs, context):
    x = args[0]
    axes = _ints(args[1]) if len(args) > 1 and args[1] is not None else attrs.get("axes")
    if axes is None:
        return x.squeeze()
    for axis in sorted((_axis(a, x.dim()) for a in axes), reverse=True):
        x = x.squeeze(axis)
    return x


def _slice(args, attrs, context):
    x = args[0]
    starts, ends = _ints(args[1]), _ints(args[2])
    axes = _ints(args[3]) if len(args) > 3 and args[3] is not None else list(range(len(starts)))
    steps = _ints(args[4]) if len(args) > 4 and args[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.dim()
    backwards = []
    for start, end, axis, step in zip(starts, ends, axes, steps):
        size = x.shape[_axis(axis, x.dim())]
        if step == 0:
            raise ValueError("Slice with a step of 0 is not valid ONNX")
        if step < 0:  # torch indexes forwards only: the positions, gathered (exporters reverse pad lists so)
            start = max(0, min(size - 1, start + size if start < 0 else start))
            end = max(-1, min(size - 1, end + size if end < 0 else end))
            positions = (torch.arange(start, end, step, device=x.device) if size and start > end
                         else torch.empty(0, dtype=torch.long, device=x.device))
            backwards.append((_axis(axis, x.dim()), positions))
            continue
        start = max(0, min(size, start + size if start < 0 else start))
        end = max(0, min(size, end + size if end < 0 else end))
        index[_axis(axis, x.dim())] = slice(start, end, step)
    x = x[tuple(index)]
    for axis, positions in backwards:
        x = x.index_select(axis, positions)
    return x


def _pad(args, attrs, context):
    x = args[0]
    pads = _ints(args[1]) if len(args) > 1 and args[1] is not None else list(attrs.get("pads", []))
    value = float(args[2]) if len(args) > 2 and args[2] is not None else float(attrs.get("value", 0.0))
    axes = _ints(args[3]) if len(args) > 3 and args[3] is not None else list(range(len(pads) // 2))
    mode = _text(attrs.get("mode", b"constant"))
    if mode != "constant":  # torch's reflect and replicate pad only some ranks and axes
        raise ValueError(f"Pad mode {mode} is not supported by the torch rebuild (constant only)")
    begins, ends = dict(zip(axes, pads[:len(axes)])), dict(zip(axes, pads[len(axes):]))
    sequence = []  # F.pad: the last axis first
    for axis in reversed(range(x.dim())):
        key = next((a for a in axes if _axis(a, x.dim()) == axis), None)
        sequence += [begins.get(key, 0), ends.get(key, 0)] if key is not None else [0, 0]
    while sequence[-2:] == [0, 0] and len(sequence) > 2:
        sequence = sequence[:-2]
    return F.pad(x, sequence, mode="constant", value=value)


def _split(args, attrs, context):
    x = args[0]
    axis = _axis(attrs.get("axis", 0), x.dim())
    if len(args) > 1 and args[1] is not None:
        sizes = _ints(args[1])
    elif "split" in attrs:
        sizes = list(attrs["split"])
    else:
        parts = attrs["num_outputs"]
        chunk = -(-x.shape[axis] // parts)
        sizes = [min(chunk, x.shape[axis] - i * chunk) for i in range(parts)]
    return tuple(torch.split(x, sizes, dim=axis))


def _concat(args, attrs, context):
    parts = [a for a in args if a is not None and a.numel() > 0] or [args[0]]
    return torch.cat(parts, dim=attrs["axis"])


def _resize(args, attrs, context):
    x = args[0]
    mode = _text(attrs.get("mode", b"nearest"))
    transform = _text(attrs.get("coordinate_transformation_mode", b"half_pixel"))
    if context.opset < 11:  # Resize-10: (X, scales)
        scales, sizes = args[1], None
    else:
        scales = args[2] if len(args) > 2 and args[2] is not None and args[2].numel() else None
        sizes = args[3] if len(args) > 3 and args[3] is not None and args[3].numel() else None
    if sizes is not None:
        size = _ints(sizes)[2:]
    else:
        factors = [float(v) for v in scales.reshape(-1).tolist()]
        size = [int(np.floor(d * f)) for d, f in zip(x.shape[2:], factors[2:])]
    if mode == "nearest":
        if transform != "asymmetric" or _text(attrs.get("nearest_mode", b"round_prefer_floor")) != "floor":
            raise ValueError("Resize nearest is supported with asymmetric coordinates and floor rounding only")
        return F.interpolate(x, size=size, mode="nearest")
    if mode == "linear":
        if transform == "align_corners":
            return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        if transform in ("half_pixel", "pytorch_half_pixel"):
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    raise ValueError(f"Resize mode {mode} with {transform} coordinates is not supported by the torch rebuild")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _cast(args, attrs, context):
    to = attrs["to"]
    if to not in _DTYPES:
        raise ValueError(f"Cast to ONNX type {to} is not supported by the torch rebuild")
    # A float cast follows the module's precision: a float16 module stays float16.
    dtype = context.float_dtype if to in _FLOATS and args[0].device == context.device else _DTYPES[to]
    return args[0].to(dtype)


def _range(args, attrs, context):
    start, limit, delta = (a.reshape(()).item() for a in args)
    return torch.arange(start, limit, delta, dtype=args[0].dtype)


def _expand(args, attrs, context):
    x, shape = args[0], _ints(args[1])
    rank = max(x.dim(), len(shape))
    shape = [1] * (rank - len(shape)) + shape
    dims = [1] * (rank - x.dim()) + list(x.shape)
    return x.reshape(dims).expand([max(a, b) if a == 1 or b == 1 else a for a, b in zip(dims, shape)])


def _constant_of_shape(args, attrs, context):
    value = attrs.get("value")
    fill = value.reshape(-1)[0] if value is not None else torch.tensor(0.0)
    return torch.full(_ints(args[0]), fill.item(), dtype=fill.dtype)


def _softmax(args, attrs, context):
    x = args[0]
    if context.opset >= 13:
        return torch.softmax(x, dim=attrs.get("axis", -1))
    # Before opset 13: the input is seen as 2-D, [all axes before ``axis``] x [axis and after].
    axis = _axis(attrs.get("axis", 1), x.dim())
    return torch.softmax(x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1), dim=1).reshape(x.shape)


def _transpose(args, attrs, context):
    x = args[0]
    return x.permute(attrs.get("perm", list(reversed(range(x.dim())))))


def _binary(function):
    def run(args, attrs, context):
        return function(args[0], args[1])
    return run


def _unary(function):
    def run(args, attrs, context):
        return function(args[0])
    return run


_OPS = {
    "Conv": _conv, "ConvTranspose": _conv_transpose,
    "MaxPool": lambda a, t, c: _pool(a, t, c, "max"), "AveragePool": lambda a, t, c: _pool(a, t, c, "average"),
    "GlobalAveragePool": _unary(lambda x: x.mean(dim=(2, 3), keepdim=True)),
    "BatchNormalization": _batch_norm, "Gemm": _gemm, "MatMul": _binary(torch.matmul),
    "Relu": _unary(F.relu), "Sigmoid": _unary(torch.sigmoid), "Tanh": _unary(torch.tanh), "PRelu": _prelu,
    "LeakyRelu": lambda a, t, c: F.leaky_relu(a[0], t.get("alpha", 0.01)), "Clip": _clip,
    "Softmax": _softmax, "Reciprocal": _unary(torch.reciprocal), "Neg": _unary(torch.neg), "Sqrt": _unary(torch.sqrt),
    "Exp": _unary(torch.exp), "Add": _binary(torch.add), "Sub": _binary(torch.sub), "Mul": _binary(torch.mul),
    "Div": lambda a, t, c: a[0] / a[1] if a[0].is_floating_point() else torch.div(a[0], a[1], rounding_mode="trunc"),
    "Pow": _binary(torch.pow), "Equal": _binary(torch.eq), "Greater": _binary(torch.gt), "Less": _binary(torch.lt),
    "Where": lambda a, t, c: torch.where(a[0], a[1], a[2]), "Not": _unary(torch.logical_not),
    "Identity": _unary(lambda x: x), "Dropout": _unary(lambda x: x),
    "Flatten": _flatten, "Reshape": _reshape, "Transpose": _transpose, "Shape": _shape,
    "Size": lambda a, t, c: torch.tensor(a[0].numel(), dtype=torch.int64),
    "Gather": _gather, "Unsqueeze": _unsqueeze, "Squeeze": _squeeze, "Slice": _slice, "Split": _split,
    "Concat": _concat, "Resize": _resize, "Cast": _cast, "Range": _range, "Expand": _expand,
    "ConstantOfShape": _constant_of_shape, "Pad": _pad,
}


def _run(op: str, args: list, attrs: dict, context: _Context):
    return _OPS[op](args, attrs, context)
