"""dlib's ResNet face descriptor file (``dlib_face_recognition_resnet_model_v1.dat``) read without dlib, and
written as an ONNX graph, so that the stream runs dlib's network through its engine layer (ONNX Runtime, or
the torch rebuild on a GPU) and a student of it can be trained (``engines/dlib_torch.py``).

dlib's Python module does not expose the weights, so the ``.dat`` file is read here. It is dlib's
serialisation of the network, layers in forward order: integers as a length byte (0x80: negative) and that
many little-endian bytes, strings as a length and bytes, tensors as version 2, (n, k, rows, cols) and raw
little-endian float32 (dlib/cuda/tensor.h). Tag and skip layers carry no weights; the residual structure is
dlib's ``dnn_face_recognition_ex`` network, read from the layer sequence:

    con 7x7/2, affine, relu, max_pool 3x3/2,
    then per residual block: con 3x3/s, affine, relu, con 3x3, affine, [avg_pool 2x2/2 of the input: the
    blocks with s = 2], add_prev, relu;
    avg_pool over everything, fc (no bias) -> 128.

dlib's add_prev adds tensors of different sizes as if the smaller were padded with zeros (channels, rows
and columns, after) to the larger: the down blocks double the channels, and at 8x8 and 4x4 inputs the
block's 3x3/2 convolution (no padding) gives one row and column fewer than its skip's 2x2/2 pooling.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_NAMES = (b"input_rgb_image_sized", b"con_4", b"affine_", b"relu_", b"max_pool_2", b"avg_pool_2",
          b"add_prev_", b"fc_2")


@dataclass
class Layer:
    kind: str
    params: np.ndarray | None = None
    numbers: tuple = ()  # the layer's integers after its parameters (sizes, strides, paddings)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def integer(self) -> int:
        head = self.data[self.at]
        size, negative = head & 0x0F, bool(head & 0x80)
        value = int.from_bytes(self.data[self.at + 1:self.at + 1 + size], "little")
        self.at += 1 + size
        return -value if negative else value

    def real(self) -> float:  # dlib's portable float: mantissa * 2 ** exponent
        mantissa = self.integer()
        return float(mantissa) * 2.0 ** self.integer()

    def tensor(self) -> np.ndarray:
        if self.integer() != 2:
            raise ValueError(f"an unknown tensor version at byte {self.at}")
        shape = [self.integer() for _ in range(4)]
        count = int(np.prod(shape))
        if self.at + 4 * count > len(self.data):
            raise ValueError(f"a tensor of {count} values runs past the end of the file at byte {self.at}")
        values = np.frombuffer(self.data, "<f4", count, self.at).copy()
        self.at += 4 * count
        return values.reshape(shape)


def read_layers(path: Path) -> tuple[list[Layer], tuple[float, float, float]]:
    """The weighted and structural layers of a dlib face descriptor file in forward order, and the mean RGB its
    input layer subtracts."""
    data = Path(path).read_bytes()
    try:
        return _parse(data, path)
    except (ValueError, IndexError) as exc:  # a truncated or foreign file runs off its end or its formats
        raise ValueError(f"{path} is not a dlib face descriptor network ({exc})") from None


def _parse(data: bytes, path: Path) -> tuple[list[Layer], tuple[float, float, float]]:
    reader, layers, mean = _Reader(data), [], None
    while True:
        found = [(data.find(bytes([1, len(n)]) + n, reader.at), n) for n in _NAMES]
        found = [(at, n) for at, n in found if at >= 0]
        if not found:
            break
        at, name = min(found)
        reader.at = at + 2 + len(name)
        if name == b"input_rgb_image_sized":
            mean = (reader.real(), reader.real(), reader.real())
        elif name == b"con_4":
            params = reader.tensor()
            layers.append(Layer("con", params, tuple(reader.integer() for _ in range(7))))
        elif name == b"affine_":
            layers.append(Layer("affine", reader.tensor()))
        elif name == b"fc_2":
            outputs, inputs = reader.integer(), reader.integer()
            layers.append(Layer("fc", reader.tensor(), (outputs, inputs)))
        elif name in (b"max_pool_2", b"avg_pool_2"):
            layers.append(Layer(name.decode()[:-2], None, tuple(reader.integer() for _ in range(6))))
        else:
            layers.append(Layer(name.decode().rstrip("_")))
    if mean is None or not layers or layers[-1].kind != "fc":
        raise ValueError("no input layer or no final fc layer")
    return layers, mean




@dataclass
class Block:
    """One residual block: its two convolutions with their affines, and the skip's pooling (down blocks)."""

    first: tuple[Layer, Layer]
    second: tuple[Layer, Layer]
    pool: Layer | None


@dataclass
class Network:
    mean: tuple[float, float, float]  # RGB, subtracted before dividing by 256
    stem: tuple[Layer, Layer]
    stem_pool: Layer
    blocks: list[Block]
    fc: Layer


def read_network(path: Path) -> Network:
    """The network in ``path``, checked against the structure above; ValueError naming the file otherwise."""
    layers, mean = read_layers(path)
    kinds = [layer.kind for layer in layers]
    if kinds[:4] != ["con", "affine", "relu", "max_pool"]:
        raise ValueError(f"{path}: the network does not open with con, affine, relu, max_pool ({kinds[:4]})")
    blocks, at = [], 4
    while kinds[at] == "con":
        down = kinds[at + 5] == "avg_pool"
        expected = ["con", "affine", "relu", "con", "affine", *(["avg_pool"] if down else []), "add_prev", "relu"]
        if kinds[at:at + len(expected)] != expected:
            raise ValueError(f"{path}: layer {at} does not begin a residual block ({kinds[at:at + 8]})")
        blocks.append(Block((layers[at], layers[at + 1]), (layers[at + 3], layers[at + 4]),
                            layers[at + 5] if down else None))
        at += len(expected)
    if kinds[at:] != ["avg_pool", "fc"] or layers[at].numbers[:2] != (0, 0):
        raise ValueError(f"{path}: the network does not end with a global avg_pool and fc ({kinds[at:]})")
    return Network(mean, (layers[0], layers[1]), layers[3], blocks, layers[-1])


def conv_weights(con: Layer, affine: Layer) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(filters (out, in, rows, cols), biases, the affine's scale, its shift) of a con and the affine after it."""
    filters, rows, cols = con.numbers[:3]
    inputs = (con.params.size // filters - 1) // (rows * cols)
    weights = con.params.reshape(-1)
    split = filters * inputs * rows * cols
    scale, shift = affine.params.reshape(2, filters)
    return weights[:split].reshape(filters, inputs, rows, cols), weights[split:], scale, shift


def fc_weights(fc: Layer) -> np.ndarray:
    """(inputs, outputs): the descriptor is the pooled features times this matrix."""
    outputs, inputs = fc.numbers
    return fc.params.reshape(inputs, outputs)


def _out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def onnx_bytes(path: Path, chip_px: int = 150) -> bytes:
    """dlib's network as a serialised ONNX model: "chip" (n, 3, chip_px, chip_px) RGB pixel values 0-255 ->
    "descriptor" (n, 128), dlib's face descriptor (not normalised). Each affine is folded into its convolution."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    net = read_network(path)
    nodes, weights = [], []

    def constant(name: str, value: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], **attrs) -> str:
        name = f"{op.lower()}{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def conv(x: str, layers: tuple[Layer, Layer], shape: list[int], tag: str) -> tuple[str, list[int]]:
        con, affine = layers
        w, b, scale, shift = conv_weights(con, affine)
        _, rows, cols, stride_y, stride_x, pad_y, pad_x = con.numbers
        folded_w = (w * scale[:, None, None, None]).astype(np.float32)
        folded_b = (b * scale + shift).astype(np.float32)
        out = node("Conv", [x, constant(f"{tag}.w", folded_w), constant(f"{tag}.b", folded_b)],
                   kernel_shape=[rows, cols], strides=[stride_y, stride_x], pads=[pad_y, pad_x, pad_y, pad_x])
        return out, [w.shape[0], _out(shape[1], rows, stride_y, pad_y), _out(shape[2], cols, stride_x, pad_x)]

    def pool(op: str, x: str, layer: Layer, shape: list[int]) -> tuple[str, list[int]]:
        rows, cols, stride_y, stride_x, pad_y, pad_x = layer.numbers
        out = node(op, [x], kernel_shape=[rows, cols], strides=[stride_y, stride_x], pads=[pad_y, pad_x, pad_y, pad_x])
        return out, [shape[0], _out(shape[1], rows, stride_y, pad_y), _out(shape[2], cols, stride_x, pad_x)]

    def padded(x: str, shape: list[int], size: list[int], tag: str) -> str:
        extra = [s - d for s, d in zip(size, shape)]
        if not any(extra):
            return x
        return node("Pad", [x, constant(f"{tag}.pads", np.array([0, 0, 0, 0, 0, *extra], np.int64))])

    x = node("Sub", ["chip", constant("mean", np.array(net.mean, np.float32).reshape(1, 3, 1, 1))])
    x = node("Mul", [x, constant("scale", np.array(1 / 256, np.float32))])
    x, shape = conv(x, net.stem, [3, chip_px, chip_px], "stem")
    x, shape = pool("MaxPool", node("Relu", [x]), net.stem_pool, shape)
    for index, block in enumerate(net.blocks):
        body, body_shape = conv(x, block.first, shape, f"block{index}.first")
        body, body_shape = conv(node("Relu", [body]), block.second, body_shape, f"block{index}.second")
        skip, skip_shape = pool("AveragePool", x, block.pool, shape) if block.pool else (x, shape)
        size = [max(a, b) for a, b in zip(body_shape, skip_shape)]
        x = node("Relu", [node("Add", [padded(skip, skip_shape, size, f"block{index}.skip"),
                                       padded(body, body_shape, size, f"block{index}.body")])])
        shape = size
    x = node("Flatten", [node("GlobalAveragePool", [x])])
    nodes.append(helper.make_node("MatMul", [x, constant("fc", fc_weights(net.fc).astype(np.float32))],
                                  ["descriptor"], name="fc"))
    outputs = net.fc.numbers[0]
    graph = helper.make_graph(
        nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chip", TensorProto.FLOAT, ["n", 3, chip_px, chip_px])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["n", outputs])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="streamer")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


CONVERTER = 1  # in the cached file's name: a change to onnx_bytes is written afresh, never read from an old cache


def converted(path: Path, folder: Path, name: str) -> Path:
    """``onnx_bytes(path)`` kept as ``folder/name`` (written once, atomically; the name should carry the file's
    fingerprint, and gets the converter's version); where ``folder`` cannot be written, in this user's own
    temporary folder instead."""
    name = f"{Path(name).stem}-c{CONVERTER}{Path(name).suffix}"
    own = Path(tempfile.gettempdir()) / f"streamer-models-{os.getuid()}"  # never another user's file
    places = [folder, own]
    for place in places:
        target = place / name
        if target.is_file() and os.access(target, os.R_OK):
            return target
    model, failure = onnx_bytes(path), None
    for place in places:
        target, tmp = place / name, None
        try:
            place.mkdir(parents=True, exist_ok=True, mode=0o700 if place == own else 0o777)
            handle, tmp = tempfile.mkstemp(dir=place, suffix=".tmp")
            with os.fdopen(handle, "wb") as f:
                f.write(model)
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would keep it from the other users of a shared model folder
            os.replace(tmp, target)  # two runs converting at once: each writes its own and one wins whole
            return target
        except OSError as exc:
            failure = exc
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
    raise OSError(f"cannot write the ONNX form of {path} to {folder} or {own} ({failure})")
