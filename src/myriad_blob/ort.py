"""ONNX Runtime, as every part of the converter runs it: one way to open a session."""

from __future__ import annotations

from pathlib import Path


def ort_session(model: Path | str | bytes, *, optimize: bool = False):
    """An ONNX Runtime CPU session (onnxruntime.InferenceSession) for an ONNX file or a serialized
    model. Quiet: a failure reaches the user as our one line, not ORT's log. No graph optimizations
    unless optimize: a reference must be the model as written (and ORT's rewrites could fold an
    emulation's Cast pairs away). Raises what onnxruntime raises for a model it cannot run."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4
    if not optimize:
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
