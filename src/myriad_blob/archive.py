"""Camera-ready output: the depthai NN Archive (config.json + the blob, as .tar.xz) that depthai v3 loads.

config.json is built and validated with luxonis-ml's NN Archive schema (luxonis_ml.nn_archive.Config,
the pydantic models of the format that Luxonis's converters and depthai's NNArchive follow), so a
field the format does not know, or a head whose metadata does not fit its parser, fails here and
not on the camera. Mean, scale and channel order are baked into the blob, so the archive declares
mean 0 and scale 1: a pipeline that applied the archive's values would otherwise apply them twice.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from .blob import BlobInfo
from .files import write_atomically

_DTYPES = {"U8": "uint8", "FP16": "float16", "FP32": "float32", "I32": "int32", "I8": "int8"}
_LAYOUTS = {"NCHW": "NCHW", "NC": "NC", "NHWC": "NHWC", "CHW": "CHW", "C": "C"}


def camera_frame_type(reverse_input_channels: bool, layout: str = "NCHW") -> str:
    """What the camera should send. PyTorch models expect RGB: with --reverse-input-channels the
    blob takes the camera's BGR and flips it; without, the camera must send RGB. A planar (NCHW)
    input takes ...888p frames, an interleaved (NHWC) one ...888i (depthai's ImgFrame types)."""
    return ("BGR888" if reverse_input_channels else "RGB888") + ("i" if layout == "NHWC" else "p")


def is_image(tensor) -> bool:
    """A 3-channel image tensor of the blob (dims in N, C, H, W order, whatever its layout)."""
    return len(tensor.shape) == 4 and tensor.shape[1] == 3


def camera_frame_types(info: BlobInfo, reverse_input_channels: bool) -> dict[str, str]:
    """{input name: frame type} for each of the blob's 3-channel image inputs, by its header's layout."""
    return {t.name: camera_frame_type(reverse_input_channels, t.order) for t in info.inputs if is_image(t)}


def shape_in_layout(tensor) -> list[int]:
    """The tensor's dims in its layout's order ([N, H, W, C] for NHWC), as the NN Archive pairs
    "shape" with "layout" (depthai reads an input's width and height from them)."""
    if tensor.order == "NHWC" and len(tensor.shape) == 4:
        batch, channels, height, width = tensor.shape
        return [batch, height, width, channels]
    return list(tensor.shape)


def nn_archive_config(
    name: str, blob_name: str, info: BlobInfo, reverse_input_channels: bool, heads: list[dict] | None = None
) -> dict:
    """config.json, validated by luxonis-ml's schema. heads: parser heads (e.g. a detection head: parser,
    outputs, metadata), written as given once the schema accepts them."""
    from luxonis_ml.nn_archive import Config

    inputs = []
    for tensor in info.inputs:
        image = is_image(tensor)
        # interleaved_to_planar (legacy, beside dai_type): the blob takes interleaved (NHWC) frames.
        preprocessing = {
            "mean": [0.0] * tensor.shape[1] if image else None,
            "scale": [1.0] * tensor.shape[1] if image else None,
            "reverse_channels": not reverse_input_channels if image else None,
            "interleaved_to_planar": tensor.order == "NHWC",
            "dai_type": camera_frame_type(reverse_input_channels, tensor.order) if image else None,
        }
        inputs.append(
            {
                "name": tensor.name,
                "dtype": _DTYPES.get(tensor.data_type, tensor.data_type.lower()),
                "input_type": "image" if image else "raw",
                "shape": shape_in_layout(tensor),
                "layout": _LAYOUTS.get(tensor.order, tensor.order),
                "preprocessing": {k: v for k, v in preprocessing.items() if v is not None},
            }
        )
    outputs = [
        {
            "name": t.name,
            "dtype": _DTYPES.get(t.data_type, t.data_type.lower()),
            "shape": shape_in_layout(t),
            "layout": _LAYOUTS.get(t.order, t.order),
        }
        for t in info.outputs
    ]
    config = {
        "config_version": "1.0",
        "model": {
            "metadata": {"name": name, "path": blob_name, "precision": "float16"},
            "inputs": inputs,
            "outputs": outputs,
            "heads": list(heads or []),
        },
    }
    return Config.model_validate(config).model_dump(mode="json", exclude_none=True)


def write_nn_archive(path: Path, blob: bytes, blob_name: str, config: dict) -> None:
    buffer = io.BytesIO()
    # Fixed mtimes and owners: the same blob gives the same archive bytes.
    with tarfile.open(fileobj=buffer, mode="w:xz") as archive:
        for member_name, content in (("config.json", json.dumps(config, indent=2).encode()), (blob_name, blob)):
            member = tarfile.TarInfo(member_name)
            member.size, member.mode, member.mtime = len(content), 0o644, 0
            archive.addfile(member, io.BytesIO(content))
    write_atomically(path, buffer.getvalue())
