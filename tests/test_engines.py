"""Inference backends behind one interface; TensorRT's own test runs only where it can."""

from dataclasses import replace

import numpy as np
import pytest

from engines import Device, open_engine, select_device
from engines.tensorrt_engine import BuildSpec, cache_key, tensorrt_status


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A small conv net exported to ONNX (dynamic batch) and TorchScript."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 1)).eval()
    folder = tmp_path_factory.mktemp("engines")
    example = torch.randn(2, 4, 32, 32)
    torch.onnx.export(net, example, folder / "tiny.onnx", input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, dynamo=False)
    torch.jit.trace(net, example).save(str(folder / "tiny.ts"))
    return net, folder


def test_cpu_is_chosen_without_a_gpu():
    device = select_device("auto")
    assert device.kind in ("cpu", "cuda")
    assert select_device("cpu").torch == "cpu"


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_onnxruntime_and_torch_agree_on_dynamic_batches(tiny_model, batch):
    import torch

    net, folder = tiny_model
    x = np.random.default_rng(batch).standard_normal((batch, 4, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    ort = open_engine(folder / "tiny.onnx", Device("cpu"))
    ts = open_engine(folder / "tiny.ts", Device("cpu"))
    assert (ort.backend, ts.backend) == ("onnxruntime", "torch")
    assert np.allclose(ort.run({"input": x})[0], expected, atol=1e-4)
    assert np.allclose(ts.run({"input": x})[0], expected, atol=1e-5)


def test_onnxruntime_engine_says_what_the_model_declares(tiny_model):
    import onnx

    _, folder = tiny_model
    model = onnx.load(str(folder / "tiny.onnx"))
    model.metadata_props.append(onnx.StringStringEntryProto(key="task", value="segment"))
    onnx.save(model, str(folder / "tiny-meta.onnx"))
    engine = open_engine(folder / "tiny-meta.onnx", Device("cpu"), backend="onnxruntime")
    [image], [output] = engine.inputs, engine.outputs
    assert (image.name, image.shape, image.dtype) == ("input", (None, 4, 32, 32), np.float32)  # None: dynamic batch
    assert (output.name, output.shape) == ("output", (None, 3, 32, 32))
    assert engine.metadata == {"task": "segment"}


def test_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        open_engine(tmp_path / "none.onnx", Device("cpu"))


def test_tensorrt_cache_key_covers_model_gpu_version_and_precision():
    spec = BuildSpec(max_batch=16, opt_batch=8, fp16=True)
    base = cache_key(b"model", "NVIDIA H200", "9.0", "10.9.0", spec)
    variants = [
        cache_key(b"model2", "NVIDIA H200", "9.0", "10.9.0", spec),
        cache_key(b"model", "NVIDIA L4", "8.9", "10.9.0", spec),
        cache_key(b"model", "NVIDIA H200", "9.0", "10.10.0", spec),
        cache_key(b"model", "NVIDIA H200", "9.0", "10.9.0", replace(spec, fp16=False)),
        cache_key(b"model", "NVIDIA H200", "9.0", "10.9.0", replace(spec, max_batch=32)),
    ]
    assert len({base, *variants}) == 6
    assert base == cache_key(b"model", "NVIDIA H200", "9.0", "10.9.0", BuildSpec(16, 8, True))


def test_tensorrt_profile_is_batch_1_to_max():
    assert BuildSpec(max_batch=16, opt_batch=4).profile_shapes((-1, 4, 128, 128)) == (
        (1, 4, 128, 128), (4, 4, 128, 128), (16, 4, 128, 128))
    with pytest.raises(ValueError, match="only the batch axis may be dynamic"):
        BuildSpec().profile_shapes((-1, 3, -1, -1))
    with pytest.raises(ValueError, match="opt_batch must be in 1..max_batch"):
        BuildSpec(max_batch=4, opt_batch=8)


_trt_ok, _trt_detail = tensorrt_status()
_gpu = select_device("auto").is_cuda


@pytest.mark.needs_cuda
@pytest.mark.skipif(not (_trt_ok and _gpu), reason=f"needs tensorrt and a CUDA GPU (tensorrt: {_trt_detail})")
def test_tensorrt_engine_matches_torch(tiny_model, tmp_path):
    import torch

    from engines.tensorrt_engine import TensorRTEngine

    net, folder = tiny_model
    device = select_device("cuda")
    engine = TensorRTEngine.from_file(folder / "tiny.onnx", device, BuildSpec(max_batch=8, opt_batch=4), tmp_path)
    x = torch.randn(5, 4, 32, 32, device=device.torch)
    out = engine.run_device({"input": x})[0]
    torch.cuda.synchronize()
    expected = net.to(device.torch)(x)
    assert torch.allclose(out.float(), expected, atol=2e-2)  # FP16 engine
    cached = list(tmp_path.glob("tiny-*.engine"))
    assert len(cached) == 1  # a second load reuses it
    assert TensorRTEngine.from_file(folder / "tiny.onnx", device, BuildSpec(max_batch=8, opt_batch=4), tmp_path)
