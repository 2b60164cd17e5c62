"""What a model file (or a flag) declares, checked before anything is read or allocated from it:
input sizes against the Myriad X, a zip's declared sizes, ONNX external data's locations. A
model file is data from anyone: a 101-byte ONNX file can declare a 60 GB input, a 3 MB zip a
3 GB pickle, an ONNX tensor a "location" of /etc/passwd. Each limit is in LIMITS, with where
it comes from; the checks return one line saying what is wrong, or raise at the stage given."""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

from .errors import ConversionError, Stage

MB, GB = 2**20, 2**30

# The Myriad X's DDR is 512 MB (4 Gbit LPDDR4 in the package: Intel's Myriad X product brief;
# the NCS2 and OAK cameras carry the same), and the blob computes in FP16, 2 bytes a value.
# One input tensor cannot take more than all of it (the blob, the firmware and every other
# tensor share it too, so this bounds; it does not promise that a size below it fits).
# It also keeps every dimension, and every byte stride, inside the compiler's and the blob
# header's 32-bit int fields. VGA (1x3x480x640) is 0.34% of it, a detector at 640x640 0.46%.
MYRIAD_X_DDR_BYTES = 512 * MB
FP16_BYTES = 2
MAX_INPUT_VALUES = MYRIAD_X_DDR_BYTES // FP16_BYTES

# A zip (torch.save, TorchScript, .pt2) is inflated member by member into memory by torch, from
# the sizes its central directory declares. PyTorch writes its archives stored, not deflated:
# declared and file sizes agree to within the zip's headers (the tests' files: 1.0x). A
# re-compressed checkpoint of float weights shrinks little (deflate: ~1.1x). So: at most
# ZIP_MAX_RATIO times the file's size, beyond ZIP_ALLOWANCE (small archives of zeros); and never
# more than ZIP_MAX_TOTAL, far above a model the Myriad X can hold (512 MB of FP16 weights are
# 1 GB in FP32; with an EMA copy and Adam's two moments, 4 GB).
ZIP_MAX_RATIO = 20
ZIP_ALLOWANCE = 256 * MB
ZIP_MAX_TOTAL = 16 * GB

LIMITS = {
    "input values (FP16) per input": MAX_INPUT_VALUES,
    "zip: declared size / file size": ZIP_MAX_RATIO,
    "zip: declared size below which any ratio passes": ZIP_ALLOWANCE,
    "zip: declared size": ZIP_MAX_TOTAL,
}


def _size(count: int) -> str:
    for unit, scale in (("GB", GB), ("MB", MB)):
        if count >= scale:
            return f"{round(count / scale, 1):g} {unit}"
    return f"{count:,} bytes"


def input_too_large(shape) -> str | None:
    """Why an input of this shape cannot be on the Myriad X, or None. Dims that are not known
    numbers (a dynamic dim's name) are left to the stages that ask for them."""
    if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        return None
    values = math.prod(shape)
    if values <= MAX_INPUT_VALUES:
        return None
    return (
        f"{list(shape)} is {values:,} values, {_size(values * FP16_BYTES)} in FP16: more than the Myriad X's "
        f"{_size(MYRIAD_X_DDR_BYTES)} of memory holds (at most {MAX_INPUT_VALUES:,} values an input)"
    )


def check_zip_sizes(path: Path, archive: zipfile.ZipFile) -> None:
    """Refuse (load stage) a zip whose members declare more than LIMITS allow, from its central
    directory: nothing is inflated."""
    members = archive.infolist()
    total = sum(member.file_size for member in members)
    largest = max(members, key=lambda member: member.file_size, default=None)
    file_size = path.stat().st_size
    cap = min(ZIP_MAX_TOTAL, max(ZIP_ALLOWANCE, ZIP_MAX_RATIO * file_size))
    if largest is None or total <= cap:
        return
    why = (
        f"more than {_size(ZIP_MAX_TOTAL)}"
        if total > ZIP_MAX_TOTAL
        else f"{total / file_size:,.0f} times the file's {_size(file_size)}; PyTorch's own archives are not compressed"
    )
    raise ConversionError(
        Stage.LOAD,
        f"{path} is a zip whose members would inflate to {_size(total)} ({why}; the largest, "
        f"{largest.filename!r}, declares {_size(largest.file_size)}): refused before inflating; "
        "save the model again with torch.save or torch.jit.save",
    )


def _node_tensors(nodes):
    for node in nodes:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _graph_tensors(attribute.g)
            for graph in attribute.graphs:
                yield from _graph_tensors(graph)


def _graph_tensors(graph):
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    yield from _node_tensors(graph.node)


def external_data_locations(model) -> list[tuple[str, str]]:
    """(tensor name, location) of every tensor whose data is in another file: initializers,
    constants in node attributes, subgraphs and functions alike."""
    import onnx

    tensors = list(_graph_tensors(model.graph))
    for function in model.functions:
        tensors += _node_tensors(function.node)
    return [
        (tensor.name, entry.value)
        for tensor in tensors
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    ]


def external_data_outside(model, path: Path) -> str | None:
    """Why one of the model's tensors cannot have its data read from where it says, or None:
    outside the model's folder (an absolute path, `..`, a symlink, which onnx refuses too, but as
    an internal error), or no such file there. Decided from the tensor entries, before anything
    reads external data."""
    base = Path(path).parent
    folder = os.path.realpath(base)
    for name, location in external_data_locations(model):
        parts = Path(location).parts
        links = [base.joinpath(*parts[: i + 1]) for i in range(len(parts))]
        link = next((p for p in links if p.is_symlink()), None)
        if os.path.isabs(location):
            how = "an absolute path"
        elif ".." in parts:
            how = "'..' leads out of it"
        elif link is not None:
            how = f"{link.relative_to(base)} is a symlink, to {os.path.realpath(link)}"
        elif not (base / location).is_file():
            return (
                f"tensor {name!r} keeps its data in {location!r}, which is not a file in the model's folder "
                f"{folder}: copy the model's external data beside it"
            )
        else:
            continue
        return (
            f"tensor {name!r} keeps its data in {location!r}, outside the model's folder {folder} ({how}): "
            "only regular files in the model's folder are read; save the model with its external data beside it"
        )
    return None
