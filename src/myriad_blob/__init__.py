"""myriad-blob: convert PyTorch and ONNX models to Myriad X blobs."""

__version__ = "0.1.0"
