"""The plugin's own stage graph: parsed from its dump, written by every compile, blob unchanged."""

import time
from pathlib import Path

import pytest

import stage_models
from hostile_markdown import PAYLOAD
from myriad_blob import toolchain as toolchain_module
from myriad_blob.compile_config import parse_compile_config
from myriad_blob.stage_graph import DUMP_CONFIG, DUMP_KEY, Stage, StageGraph, parse_stage_graph, read_stage_graph

DATA = Path(__file__).parent / "data"
# A real dump: Linear(48 -> 128) -> F.normalize (ONNX ReduceL2, Clip, Div), compiled for 6 SHAVEs by
# the 2021.4 plugin (tests/data/README.md says how it was made).
NORMALIZE_LINEAR = DATA / "normalize_linear.dot"


@pytest.fixture(scope="module")
def dumped() -> StageGraph:
    return parse_stage_graph(NORMALIZE_LINEAR.read_text())


@pytest.mark.unit
def test_stages_come_in_execution_order_with_their_unit_and_layer(dumped):
    run = [s for s in dumped.stages if s.executed]
    assert [s.index for s in run] == list(range(len(run)))
    assert [(s.type, s.layer) for s in run] == [
        ("Convert", None),  # U8 input -> FP16, no IR layer of its own
        ("Power", "/Div"),  # x / 255
        ("Copy", "/l/Gemm"),
        ("MyriadXHwOp", "/l/Gemm"),  # the Linear, as a 4x4 convolution on the NCE
        ("Copy", "/l/Gemm"),
        ("Power", "Power_775"),  # ReduceL2, as the plugin decomposes it: x^2 ...
        ("ReduceMean", "ReduceSum_776/pool"),  # ... mean over the 128 features ...
        ("Power", "ReduceSum_776/mul"),  # ... times 128 ...
        ("Power", "/ReduceL2"),  # ... square root: only this stage keeps the IR layer's name
        ("Clamp", "/Clip"),
        ("Power", "Power_790"),  # Div: 1/y ...
        ("Prod", "y"),  # ... times x
        ("Convert", None),  # FP16 -> FP32 output
    ]
    assert dumped.counts() == {"NCE": 1, "SHAVE": 10, "DMA": 2}
    assert [s.unit for s in run[:4]] == ["SHAVE", "SHAVE", "DMA", "NCE"]
    # Stages that do not run (resolved by memory layout) come last, index -1, and are not counted.
    assert all(not s.executed for s in dumped.stages[len(run) :])


@pytest.mark.unit
def test_a_stage_carries_its_parameters_shaves_and_data(dumped):
    by_name = {s.name: s for s in dumped.stages}
    mul = by_name["ReduceSum_776/mul@fast-stage"]
    assert mul.params["scale"] == "128" and mul.params["power"] == "1" and mul.shaves == 2
    assert mul.layer_type == "Power"
    hw = next(s for s in dumped.stages if s.unit == "NCE")
    assert hw.params["hwOpType"] == "CONV" and hw.params["kernelSizeX"] == "4"
    assert hw.shaves == 0 and hw.layer_type == "FullyConnected"
    assert any(key.startswith("tiling.") for key in hw.params)  # nested attributes, joined with "."
    (out,) = hw.outputs
    assert out.shape == (1, 128, 1, 1) and out.precision == "FP16" and out.location in {"CMX", "DDR"}
    weights = [d for d in hw.inputs if d.location == "Blob"]
    assert weights and all(d.precision == "FP16" for d in weights)  # constants live in the blob
    first = dumped.stages[0]
    assert first.inputs[0].name == "x" and first.inputs[0].precision == "FP32" and first.inputs[0].location == "Input"
    assert first.inputs[0].shape == (1, 3, 4, 4) and first.inputs[0].order == "NCHW"
    last = [s for s in dumped.stages if s.executed][-1]
    assert last.outputs[0].location == "Output" and last.outputs[0].shape == (1, 128)


@pytest.mark.unit
def test_by_layer_and_to_dict(dumped):
    layers = dumped.by_layer()
    assert [s.type for s in layers["/l/Gemm"] if s.executed] == ["Copy", "MyriadXHwOp", "Copy"]
    assert [s.type for s in layers["/ReduceL2"]] == ["Power"]
    plain = dumped.to_dict()
    assert plain["counts"] == dumped.counts() and len(plain["stages"]) == len(dumped.stages)
    assert plain["stages"][3]["unit"] == "NCE" and isinstance(plain["stages"][3]["inputs"][0]["shape"], list)


@pytest.mark.unit
@pytest.mark.parametrize(
    "text",
    [
        "",
        "digraph G { a -> b; }",
        NORMALIZE_LINEAR.read_text().replace("type = Power", "kind = Power", 1).replace("Stage ", "Stg ", 1),
        "digraph ie_vpu_model_view {\n}\n",
    ],
)
def test_a_file_that_is_not_a_dump_is_refused(text):
    with pytest.raises(ValueError):
        parse_stage_graph(text)


@pytest.mark.unit
def test_a_models_names_with_line_breaks_are_read_as_names():
    """The plugin writes layer names into its labels raw: a name holding a line break (and Markdown)
    is the stage's layer name, whole; before, the stage head did not parse and the check could not run."""
    graph = parse_stage_graph((DATA / "hostile_names.dot").read_text())
    assert graph.counts() == {"NCE": 1, "SHAVE": 2, "DMA": 1}
    hardware = next(stage for stage in graph.stages if stage.unit == "NCE")
    assert hardware.layer == "conv" + PAYLOAD and hardware.name == "conv" + PAYLOAD
    assert hardware.params["tiling.mode"] == "MODE_4_64" and hardware.params["withReLU"] == "1"


@pytest.mark.unit
def test_a_missing_or_cut_dump_gives_no_graph_and_says_why(tmp_path):
    graph, why = read_stage_graph(tmp_path / "none.dot")
    assert graph is None and why.startswith("the plugin wrote no stage graph")
    cut = tmp_path / "cut.dot"
    cut.write_text(NORMALIZE_LINEAR.read_text()[:200])
    graph, why = read_stage_graph(cut)
    assert graph is None and "does not parse" in why


@pytest.mark.unit
@pytest.mark.parametrize("key", [DUMP_KEY, *(item.partition("=")[0] for item in DUMP_CONFIG)])
def test_the_dump_keys_stay_ours_compile_config_refuses_them(key):
    with pytest.raises(ValueError, match="debugging aids"):
        parse_compile_config([f"{key}=/tmp/g.dot"])


@pytest.mark.unit
def test_stage_is_plain_data():
    stage = Stage(0, "s", "Copy", "DMA", 0, None, {}, (), ())
    assert stage.executed and stage.to_dict()["unit"] == "DMA"


def test_every_compile_dumps_the_stage_graph_and_the_blob_is_unchanged(tmp_path):
    """The dump is the compile's by-product: the blob is byte-identical with and without it, and it
    costs little time (measured here, printed for the record)."""
    path = stage_models.onnx_file(stage_models.L2Normalize(), [1, 3, 32, 40], tmp_path / "l2.onnx")
    ir, compiled, _ = stage_models.compile_model(path)
    graph = compiled.stage_graph
    assert compiled.stage_graph_error is None and graph is not None
    assert graph.counts()["NCE"] >= 1 and "/conv/Conv" in graph.by_layer()
    toolchain = toolchain_module.locate()
    base = [
        str(toolchain.compile_helper),
        "compile",
        str(ir.xml),
        "",
        "-ip",
        "U8",
        "-op",
        "FP16",
        "MYRIAD_NUMBER_OF_SHAVES=6",
        "MYRIAD_NUMBER_OF_CMX_SLICES=6",
        "MYRIAD_THROUGHPUT_STREAMS=2",
    ]
    timings = {}
    for kind, extra in (("plain", []), ("dump", [*DUMP_CONFIG, f"{DUMP_KEY}={tmp_path / 'dump' / 'g.dot'}"])):
        (tmp_path / kind).mkdir()
        args = list(base)
        args[3] = str(tmp_path / kind / "m.blob")
        started = time.perf_counter()
        result = toolchain.run(args + extra, fast_clock=True)
        timings[kind] = time.perf_counter() - started
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "plain" / "m.blob").read_bytes() == (tmp_path / "dump" / "m.blob").read_bytes()
    assert compiled.path.read_bytes() == (tmp_path / "plain" / "m.blob").read_bytes()
    assert sorted(p.name for p in (tmp_path / "dump").iterdir()) == ["g.dot", "m.blob"]  # one file, no per-pass dumps
    print(f"compile without the dump {timings['plain']:.2f} s, with it {timings['dump']:.2f} s")
    assert timings["dump"] < timings["plain"] + 2.0
