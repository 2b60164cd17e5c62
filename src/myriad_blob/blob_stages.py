"""The stage table inside a Myriad blob: what runs, in order, on which unit, over which buffers.

Any blob the 2021.4 Myriad plugin wrote carries it (ours, compile_tool's, blobconverter's), so a
blob made elsewhere can be estimated without its IR. Layout (OpenVINO 2021 sources,
inference-engine/src/vpu/graph_transformer/: include/vpu/backend/blob_format.hpp,
src/backend/serialize.cpp, src/model/stage.cpp, src/model/data.cpp):

- the section at mv_blob_header.stage_section_offset holds stages_count stages, each an
  mv_stage_header (stage_length in bytes, stage_type, numShaves), the stage's own parameters,
  its buffer descriptors, then stage_type again and STAGE_BORDER_SYMBOL;
- a buffer descriptor is (data type, dims order, number of dims, dims location, dims offset,
  strides location, strides offset, data location, [I/O index, I/O byte size for I/O data],
  data offset); dims and strides sit in the const-data section (innermost first);
- an NCE stage (MyriadXHwOp) may carry a SHAVE or DMA stage injected into it (run while the NCE
  works): a whole stage nested in its parameters.

Parameters are not decoded (each stage type has its own); buffers are found by their shape,
which no parameter block imitates in practice (a descriptor's dims order is a permutation code).
"""

from __future__ import annotations

import dataclasses
import struct

from .blob import ELF_HEADER_SIZE, BlobFormatError

STAGE_BORDER_SYMBOL = 0x7F83FF19
# vpu::StageType (include/vpu/model/stage.hpp, 2021): the codes a blob stores.
STAGE_TYPES = {
    0: "Conv", 1: "MaxPool", 2: "AvgPool", 3: "SoftMax", 4: "FC", 5: "None", 6: "Relu", 8: "DepthConv",
    9: "Bias", 10: "PRelu", 11: "LRN", 12: "Sum", 13: "Prod", 14: "Max", 15: "Scale", 18: "InnerLRN",
    19: "Copy", 20: "Sigmoid", 21: "Tanh", 22: "Deconvolution", 23: "Elu", 26: "Power", 28: "Tile",
    29: "RegionYolo", 30: "ReorgYolo", 34: "Permute", 35: "Normalize", 37: "DetectionOutput",
    38: "MyriadXHwOp", 43: "CTCDecoder", 44: "LeakyRelu", 45: "BiasRelu", 46: "BiasLeakyRelu",
    47: "ScaleShift", 49: "Im2ColConvolution", 56: "HwFcRelayout", 57: "Clamp", 58: "RefConvolution",
    60: "GlobalMaxPool", 61: "GRN", 62: "MVN", 63: "DepthDeconv", 64: "Proposal", 65: "ROIPooling",
    66: "PSROIPooling", 67: "Interp", 69: "MTCNN", 70: "LSTMCell", 71: "Pad", 72: "Resample",
    73: "Upsampling", 75: "Div", 76: "Min", 77: "Squared_diff", 78: "Equal", 79: "Not_equal",
    80: "Greater", 81: "Greater_equal", 82: "Less", 83: "Less_equal", 84: "Logical_NOT",
    85: "Logical_AND", 86: "Logical_OR", 87: "Logical_XOR", 88: "Pow", 89: "Floor_mod", 90: "Select",
    91: "GEMM", 92: "Log", 93: "ReduceAnd", 94: "ReverseSequence", 100: "Gather", 101: "Exp",
    102: "Floor", 103: "ScatterUpdate", 104: "TopK", 105: "ReduceMin", 106: "ExpDetectionOutput",
    108: "ROIFeatureExtractor", 109: "SCRelu", 110: "Erf", 111: "Convert", 112: "ReduceMax",
    113: "ReduceSum", 114: "ReduceMean", 115: "Custom", 116: "ConvND", 117: "OneHot", 118: "PoolND",
    119: "LoopStart", 120: "LoopEnd", 121: "ExpPriorGridGenerator", 122: "NonZero", 123: "ROIAlign",
    124: "ExpGenerateProposals", 125: "ExpTopKROIs", 126: "ScatterElementsUpdate",
    127: "OutShapeOfReshape", 128: "Concat", 129: "Broadcast", 130: "StaticShapeNMS", 131: "Mish",
    132: "Gelu", 133: "StridedSlice", 134: "SoftPlus", 135: "Swish", 136: "GatherND", 137: "HSwish",
    138: "Ceiling",
}  # fmt: skip
# vpu::Location: where a buffer lives (Input/Output: the I/O buffers in DDR; BSS: DDR scratch).
LOCATIONS = {0: "None", 1: "Input", 2: "Output", 3: "Blob", 4: "DDR", 5: "CMX"}
DDR_LOCATIONS = {"Input", "Output", "DDR"}
_ELEMENT_BYTES = {0: 2, 1: 1, 2: 4, 3: 4, 4: 1}  # FP16, U8, S32, FP32, I8
_DATA_TYPES = {0: "FP16", 1: "U8", 2: "I32", 3: "FP32", 4: "I8"}


@dataclasses.dataclass(frozen=True)
class BlobBuffer:
    """One buffer a stage reads or writes: dims innermost first (W, H, C, N for NCHW), its data
    type and location (CMX, DDR, Blob = weights/constants, Input/Output = the I/O buffers)."""

    dims: tuple[int, ...]
    data_type: str
    location: str

    @property
    def elements(self) -> int:
        count = 1
        for dim in self.dims:
            count *= dim
        return count

    @property
    def bytes(self) -> int:
        return self.elements * _ELEMENT_BYTES.get(next(k for k, v in _DATA_TYPES.items() if v == self.data_type), 2)


@dataclasses.dataclass(frozen=True)
class BlobStage:
    """One executed stage. unit: NCE (MyriadXHwOp), DMA (Copy, loops) or SHAVE (the rest);
    shaves: the SHAVEs the stage runs on (0 for NCE and DMA); buffers in serialized order (for an
    NCE stage: input, weights and biases (Blob), output last); injected: a stage run inside it."""

    index: int
    type: str
    shaves: int
    buffers: tuple[BlobBuffer, ...]
    injected: tuple[BlobStage, ...] = ()

    @property
    def unit(self) -> str:
        if self.type == "MyriadXHwOp":
            return "NCE"
        if self.type in ("Copy", "LoopStart", "LoopEnd"):
            return "DMA"
        return "SHAVE"


def _is_order(code: int, count: int) -> bool:
    digits = []
    while code:
        digits.append(code & 0xF)
        code >>= 4
    # Distinct dimension numbers (W=1, H=2, C=3, N=4, D=5, ...): a 2-D NC tensor is 0x43.
    return len(digits) == count and len(set(digits)) == count and all(1 <= d <= 8 for d in digits)


def _buffers(words: tuple[int, ...], start: int, end: int, data: bytes, const_offset: int) -> list[BlobBuffer]:
    found, j = [], start
    while j + 8 <= end:
        data_type, order, count = words[j], words[j + 1], words[j + 2]
        if (
            data_type in _DATA_TYPES
            and 1 <= count <= 8
            and _is_order(order, count)
            and words[j + 3] in (2, 3)  # dims in the blob (or, for dynamic shapes, an output)
            and words[j + 5] in (2, 3)
            and words[j + 7] in LOCATIONS
        ):
            location = LOCATIONS[words[j + 7]]
            dims_at = const_offset + words[j + 4]
            if words[j + 3] == 3 and dims_at + 4 * count <= len(data):
                dims = struct.unpack_from(f"<{count}I", data, dims_at)
                found.append(BlobBuffer(tuple(dims), _DATA_TYPES[data_type], location))
            j += 8 + (2 if location in ("Input", "Output") else 0) + 1
        else:
            j += 1
    return found


def _stage(index: int, data: bytes, offset: int, const_offset: int) -> tuple[BlobStage, int]:
    if offset + 12 > len(data):
        raise BlobFormatError(f"stage {index} starts past the blob's end")
    length, type_code, shaves = struct.unpack_from("<3I", data, offset)
    if length < 20 or length % 4 or offset + length > len(data):
        raise BlobFormatError(f"stage {index} has a length of {length} bytes")
    words = struct.unpack_from(f"<{length // 4}I", data, offset)
    if words[-1] != STAGE_BORDER_SYMBOL or words[-2] != type_code:
        raise BlobFormatError(f"stage {index} does not end in its border symbol")
    injected, start = [], 3
    for border in (i for i in range(3, len(words) - 1) if words[i] == STAGE_BORDER_SYMBOL):
        # An injected stage: the nested header whose length ends at this border.
        head = next(
            (
                k
                for k in range(start, border - 3)
                if 4 * k + words[k] == 4 * (border + 1) and words[k + 1] == words[border - 1]
            ),
            None,
        )
        if head is not None:
            stage, _ = _stage(index, data, offset + 4 * head, const_offset)
            injected.append(stage)
            start = border + 1
    buffers = _buffers(words, start, len(words) - 2, data, const_offset)
    name = STAGE_TYPES.get(type_code, f"type {type_code}")
    return BlobStage(index, name, shaves, tuple(buffers), tuple(injected)), offset + length


def parse_stage_table(data: bytes) -> tuple[BlobStage, ...]:
    """The blob's executed stages, in order. BlobFormatError when the header or a stage is not the
    2021 plugin's layout (blob version 6.x)."""
    if len(data) < ELF_HEADER_SIZE + 80:
        raise BlobFormatError("too short for a blob header")
    header = struct.unpack_from("<20I", data, ELF_HEADER_SIZE)
    count, stage_offset, const_offset = header[6], header[18], header[19]
    stages, offset = [], stage_offset
    for index in range(count):
        stage, offset = _stage(index, data, offset, const_offset)
        stages.append(stage)
    return tuple(stages)
