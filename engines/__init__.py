"""Inference backends behind one interface, and the choice of device.

``select_device`` decides CPU or GPU once at start-up; ``open_engine`` loads a
model file with the best backend for that device (TensorRT, then ONNX
Runtime, then torch). Stages never import a runtime directly for that choice.
"""

from engines.base import InferenceEngine, TensorSpec, onnx_backend, open_engine
from engines.device import Device, select_device

__all__ = ["Device", "InferenceEngine", "TensorSpec", "onnx_backend", "open_engine", "select_device"]
