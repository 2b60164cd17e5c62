"""Stage 5, verify: read a Myriad blob's own header, and check it against what was asked.

The layout (an ELF header, then mv_blob_header, then the I/O sections) is the one the Myriad
plugin writes and depthai-core's BlobReader reads (BlobFormat.hpp in luxonis/depthai-core).
"""

from __future__ import annotations

import dataclasses
import struct

from .artifacts import TensorInfo
from .errors import ConversionError, Stage
from .rules.advice import REFUSED

ELF_HEADER_SIZE = 52
BLOB_MAGIC = 0x25ED
_HEADER_FIELDS = (
    "magic_number",
    "file_size",
    "blob_ver_major",
    "blob_ver_minor",
    "inputs_count",
    "outputs_count",
    "stages_count",
    "inputs_size",
    "outputs_size",
    "batch_size",
    "bss_mem_size",
    "number_of_cmx_slices",
    "number_of_shaves",
    "has_hw_stage",
    "has_shave_stage",
    "has_dma_stage",
    "input_info_section_offset",
    "output_info_section_offset",
    "stage_section_offset",
    "const_data_section_offset",
)
# vpu::DataType in the plugin; depthai calls these FP16, U8F, INT, FP32, I8.
DATA_TYPES = {0: "FP16", 1: "U8", 2: "I32", 3: "FP32", 4: "I8"}
# DimsOrder codes: one hex digit per dimension, outermost first (the plugin's vpu::Dim + 1).
_DIM_LETTERS = {1: "W", 2: "H", 3: "C", 4: "N", 5: "D"}
# The IR's (and ONNX's) order of those dimensions: N, C, D, H, W (a 5-D tensor is NCDHW: D is not
# outermost although its digit is the largest). Beyond 5-D the plugin numbers the dimensions 1..n,
# the IR's outermost the largest.
_CANONICAL = {4: 0, 3: 1, 5: 2, 2: 3, 1: 4}


class BlobFormatError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class BlobTensor:
    name: str
    data_type: str
    order: str  # e.g. "NCHW": the memory layout, outermost first
    shape: tuple[int, ...]  # canonical (N, C, H, W) order, as the IR and ONNX state it
    raw_dims: tuple[int, ...]  # innermost first, as stored (and as depthai reports them)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"shape": list(self.shape), "raw_dims": list(self.raw_dims)}


@dataclasses.dataclass(frozen=True)
class BlobInfo:
    size: int
    version: tuple[int, int]
    stage_count: int
    shaves: int
    cmx_slices: int
    inputs: tuple[BlobTensor, ...]
    outputs: tuple[BlobTensor, ...]

    def to_dict(self) -> dict:
        return {
            "size": self.size,
            "version": f"{self.version[0]}.{self.version[1]}",
            "stage_count": self.stage_count,
            "shaves": self.shaves,
            "cmx_slices": self.cmx_slices,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }


def parse_blob(data: bytes) -> BlobInfo:
    """Parse a blob's header and I/O descriptions; BlobFormatError if it is not a well-formed blob."""
    if len(data) < ELF_HEADER_SIZE + 4 * len(_HEADER_FIELDS) or not data.startswith(b"\x7felf"):
        raise BlobFormatError("not a Myriad blob (no ELF header)")
    header = dict(zip(_HEADER_FIELDS, struct.unpack_from(f"<{len(_HEADER_FIELDS)}I", data, ELF_HEADER_SIZE)))
    if header["magic_number"] != BLOB_MAGIC:
        raise BlobFormatError(f"bad blob magic number {header['magic_number']:#x}")
    if header["file_size"] != len(data):
        raise BlobFormatError(f"blob says it is {header['file_size']} bytes but is {len(data)} (truncated?)")
    const_base = header["const_data_section_offset"]
    try:
        inputs = _read_tensors(data, header["input_info_section_offset"], header["inputs_count"], const_base)
        outputs = _read_tensors(data, header["output_info_section_offset"], header["outputs_count"], const_base)
    except struct.error as error:
        raise BlobFormatError(f"I/O section runs past the end of the blob: {error}") from None
    return BlobInfo(
        len(data),
        (header["blob_ver_major"], header["blob_ver_minor"]),
        header["stages_count"],
        header["number_of_shaves"],
        header["number_of_cmx_slices"],
        inputs,
        outputs,
    )


def _read_tensors(data: bytes, offset: int, count: int, const_base: int) -> tuple[BlobTensor, ...]:
    tensors = []
    for index in range(count):
        io_index, _buffer_offset, name_length = struct.unpack_from("<IiI", data, offset)
        if io_index != index:
            raise BlobFormatError(f"I/O entry {index} is numbered {io_index}")
        offset += 12
        name = data[offset : offset + name_length].split(b"\0", 1)[0].decode("utf-8", "replace")
        offset += name_length
        data_type, order_code, num_dims, _dims_location, dims_offset, _strides_location, _strides_offset = (
            struct.unpack_from("<7I", data, offset)
        )
        offset += 28
        raw_dims = struct.unpack_from(f"<{num_dims}I", data, const_base + dims_offset)
        digits = [int(d, 16) for d in f"{order_code:x}"]
        known = set(_DIM_LETTERS) if num_dims <= len(_DIM_LETTERS) else set(range(1, num_dims + 1))
        if len(digits) != num_dims or len(set(digits)) != num_dims or not set(digits) <= known:
            raise BlobFormatError(f"tensor {name!r} has an unknown dims order {order_code:#x}")
        # raw_dims[i] is the size of the i-th innermost dimension, i.e. of digits[-1 - i].
        size_of = {digits[-1 - i]: raw_dims[i] for i in range(num_dims)}
        rank = _CANONICAL.get if num_dims <= len(_DIM_LETTERS) else (lambda d: -d)
        shape = tuple(size_of[d] for d in sorted(size_of, key=rank))
        tensors.append(
            BlobTensor(
                name,
                DATA_TYPES.get(data_type, f"unknown({data_type})"),
                "".join(_DIM_LETTERS[d] if num_dims <= len(_DIM_LETTERS) else str(d) for d in digits),
                shape,
                tuple(raw_dims),
            )
        )
    return tuple(tensors)


def verify_blob(
    info: BlobInfo, inputs: tuple[TensorInfo, ...], outputs: tuple[TensorInfo, ...], settings: dict
) -> None:
    """Raise a VERIFY error where the blob disagrees with the IR it came from or the settings asked."""
    problems = []
    if info.shaves != settings["nshaves"]:
        problems.append(f"{info.shaves} shaves, asked {settings['nshaves']}")
    if info.cmx_slices != settings["nslices"]:
        problems.append(f"{info.cmx_slices} CMX slices, asked {settings['nslices']}")
    for role, expected, found, wanted_type in (
        ("input", inputs, info.inputs, settings["input_type"]),
        ("output", outputs, info.outputs, settings["output_type"]),
    ):
        by_name = {t.name: t for t in found}
        dynamic = [name[: -len("@shape")] for name in by_name if name.endswith("@shape")]
        if dynamic:  # the Myriad's dynamic-shape outputs: a size that depends on the data
            raise ConversionError(
                Stage.VERIFY,
                f"the blob's {role}(s) {', '.join(dynamic)} have a size that depends on "
                f"the data (the compiler added {', '.join(d + '@shape' for d in dynamic)}): "
                f"{REFUSED['NonZero'].what}; {REFUSED['NonZero'].fix}",
            )
        if sorted(by_name) != sorted(t.name for t in expected):
            problems.append(f"{role}s {sorted(by_name)}, expected {sorted(t.name for t in expected)}")
            continue
        for tensor in expected:
            got = by_name[tensor.name]
            if not same_shape(got.shape, tensor.shape):
                problems.append(f"{role} {tensor.name} has shape {list(got.shape)}, expected {list(tensor.shape)}")
            wanted = settings.get("tensor_types", {}).get(tensor.name, wanted_type)
            if wanted != "ONNX" and got.data_type != wanted:
                problems.append(f"{role} {tensor.name} is {got.data_type}, asked {wanted}")
            layout = settings.get("tensor_layouts", {}).get(tensor.name, "NCHW")
            if len(got.shape) == 4 and got.order != layout:
                problems.append(f"{role} {tensor.name} is laid out {got.order}, asked {layout}")
    if problems:
        raise ConversionError(
            Stage.VERIFY, "the blob does not match what was asked: " + "; ".join(problems) + _batch_hint(info, inputs)
        )


def same_shape(blob_shape, ir_shape) -> bool:
    """The blob's dims are the IR's, but for leading 1s the Myriad may add or drop (a 3-D [1, 4, 16]
    tensor computed from a 3-D input can come out as [1, 1, 4, 16], a scalar as [1, 1, 1, 1]): the
    same data either way."""

    def trimmed(shape):
        shape = list(shape)
        while shape and shape[0] == 1:
            shape.pop(0)
        return shape

    return tuple(blob_shape) == tuple(ir_shape) or trimmed(blob_shape) == trimmed(ir_shape)


def _batch_hint(info: BlobInfo, inputs: tuple[TensorInfo, ...]) -> str:
    """The Myriad compiler makes a batch-1 blob whatever batch the IR had: say so, and what to do."""
    by_name = {t.name: t for t in info.inputs}
    for tensor in inputs:
        got = by_name.get(tensor.name)
        if (
            got is not None
            and len(got.shape) == len(tensor.shape) > 1
            and got.shape[1:] == tuple(tensor.shape[1:])
            and got.shape[0] != tensor.shape[0]
        ):
            return (
                f" (the Myriad compiler made a batch-{got.shape[0]} blob where batch {tensor.shape[0]} was asked: "
                f"a Myriad X blob runs one batch per inference as compiled; convert with --input-shape batch "
                f"{got.shape[0]} and send frames one at a time)"
            )
    return ""
