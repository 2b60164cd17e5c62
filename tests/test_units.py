"""Fast unit tests: option parsing, format sniffing, blob parsing, error extraction."""

import struct

import pytest

from myriad_blob.blob import BlobFormatError, parse_blob
from myriad_blob.ir import explain_model_optimizer_error
from myriad_blob.options import InputSpec, parse_input_shape, parse_per_channel
from myriad_blob.toolchain import helper_error

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text, spec",
    [
        ("[1, 3, 240, 320]", InputSpec(None, (1, 3, 240, 320))),
        ("input=[1,3,240,320]", InputSpec("input", (1, 3, 240, 320))),
        (" depth = [1, 1, 8, 8] ", InputSpec("depth", (1, 1, 8, 8))),
        ("(1, 3, 2, 2)", InputSpec(None, (1, 3, 2, 2))),
    ],
)
def test_input_shape_parses(text, spec):
    assert parse_input_shape(text) == spec


@pytest.mark.parametrize(
    "text", ["1x3x240x320", "[]", "[1, -3, 2]", "[1, 3.5]", "[True, 3]", "input=", "__import__('os')"]
)
def test_input_shape_rejects(text):
    with pytest.raises(ValueError, match="--input-shape"):
        parse_input_shape(text)


def test_per_channel_values():
    assert parse_per_channel("input=[123.675, 116.28, 103.53]", "--mean") == ("input", (123.675, 116.28, 103.53))
    assert parse_per_channel("[58, 57, 57]", "--scale") == (None, (58.0, 57.0, 57.0))
    with pytest.raises(ValueError, match="must not be 0"):
        parse_per_channel("[1, 0, 1]", "--scale")
    with pytest.raises(ValueError, match="must be numbers"):
        parse_per_channel("['a']", "--mean")


def test_model_optimizer_error_names_the_op():
    output = (
        '[ ERROR ]  Cannot infer shapes or values for node "my_op".\n'
        '[ ERROR ]  There is no registered "infer" function for node "my_op" with op = "FancyOp". Please ...\n'
    )
    assert explain_model_optimizer_error(output).startswith(
        "Model Optimizer 2021.4 does not support op FancyOp (node my_op)"
    )
    assert (
        explain_model_optimizer_error("[ ERROR ]  Something odd\n[ ERROR ]  advice")
        == "Model Optimizer failed: Something odd"
    )


def test_helper_error_keeps_only_the_message():
    stderr = (
        "\x1b[1;33m[Warning][VPU][Config] Deprecated option was used : VPU_MYRIAD_PLATFORM\x1b[0m\n"
        "ERROR: [ GENERAL_ERROR ] \n/home/jenkins/x/graph_transformer.cpp:88 Value must be not greater, but 4 > 3\n"
    )
    assert helper_error(stderr) == "Value must be not greater, but 4 > 3"


def _blob(inputs=1, magic=0x25ED, size=None):
    """A minimal synthetic blob: ELF ident, header, one input entry, dims in the const section."""
    elf = b"\x7felf" + bytes(48)
    io_off, const_off = 52 + 80, 52 + 80 + 64
    entry = struct.pack("<IiI", 0, 0, 8) + b"input\0\0\0" + struct.pack("<7I", 1, 0x4321, 4, 3, 0, 3, 16)
    entry = entry.ljust(64, b"\0")
    const = struct.pack("<4I", 320, 240, 3, 1) + bytes(16)
    total = len(elf) + 80 + len(entry) + len(const)
    header = struct.pack(
        "<20I", magic, size or total, 6, 0, inputs, 0, 3, 0, 0, 1, 0, 4, 4, 1, 1, 1, io_off, io_off, 0, const_off
    )
    return elf + header + entry + const


def test_blob_parser_reads_a_synthetic_blob():
    info = parse_blob(_blob())
    assert info.version == (6, 0) and (info.shaves, info.cmx_slices, info.stage_count) == (4, 4, 3)
    (tensor,) = info.inputs
    assert (tensor.name, tensor.data_type, tensor.order, tensor.shape, tensor.raw_dims) == (
        "input",
        "U8",
        "NCHW",
        (1, 3, 240, 320),
        (320, 240, 3, 1),
    )


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "no ELF header"),
        (b"GIF89a" + bytes(200), "no ELF header"),
        (_blob(magic=0x1234), "bad blob magic"),
        (_blob()[:-10], "truncated"),
        (_blob(inputs=2), "past the end|numbered"),
    ],
)
def test_blob_parser_rejects_malformed_blobs(data, message):
    with pytest.raises(BlobFormatError, match=message):
        parse_blob(data)


def test_options_normalize_precisions_and_require_named_inputs():
    from pathlib import Path

    from myriad_blob.options import parse_options

    assert parse_options(input=Path("m.onnx"), input_type="fp16", output_type="onnx").input_type == "FP16"
    with pytest.raises(ValueError, match="--output-type must be one of"):
        parse_options(input=Path("m.onnx"), output_type="FP8")
    with pytest.raises(ValueError, match="name each one"):
        parse_options(input=Path("m.onnx"), input_shapes=["[1, 3, 8, 8]", "depth=[1, 1, 8, 8]"])
