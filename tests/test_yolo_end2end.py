"""#28: ultralytics' NMS-free detectors as users export them (`model.export(format="onnx")`, opset 18 by
default): YOLOv10 and YOLO26 with their end-to-end head (nms=False) convert with the numbers right
(the top-k's index arithmetic as Gather and table lookups); RT-DETR, whose decoder samples with
GridSample, is refused naming the node and what to do instead."""

import json
import subprocess
import sys

import pytest

from conftest import run_cli
from test_convert import assert_depthai_agrees

IMGSZ = 160  # 525 anchors: a top-k of 300 over 300 x 80 classes, indices far beyond FP16's exact 2048

EXPORT = f"""
import shutil, sys, torch
from ultralytics import RTDETR, YOLO
yaml, nms, target = sys.argv[1], sys.argv[2], sys.argv[3]
torch.manual_seed(0)  # seeded weights, from ultralytics' own YAML (no download)
model = (RTDETR if yaml.startswith("rtdetr") else YOLO)(yaml)
kwargs = {{"nms": False}} if nms == "false" else {{}}
shutil.move(model.export(format="onnx", imgsz={IMGSZ}, **kwargs), target)
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """yaml, nms -> the ONNX file ultralytics exports (cached for the module)."""
    directory = tmp_path_factory.mktemp("ultralytics-exports")
    cache = {}

    def export(yaml: str, nms: str) -> object:
        if (yaml, nms) not in cache:
            target = directory / f"{yaml.removesuffix('.yaml')}-nms{nms}.onnx"
            result = subprocess.run(
                [sys.executable, "-c", EXPORT, yaml, nms, str(target)],
                cwd=directory,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert result.returncode == 0, result.stderr[-2000:]
            cache[yaml, nms] = target
        return cache[yaml, nms]

    return export


@pytest.mark.parametrize("yaml", ["yolov10n.yaml", "yolo26n.yaml"])
def test_an_end_to_end_yolo_export_converts_with_its_numbers(exported, yaml, tmp_path):
    onnx_path = exported(yaml, "false")  # the one-to-one head: TopK, GatherElements, index // nc and % nc
    result = run_cli("convert", "--input", onnx_path, "--output", tmp_path / "e2e.blob")
    assert result.returncode == 0, result.stderr  # was exit 13: an S32 Tile (the index's Expand)
    info = assert_depthai_agrees(tmp_path / "e2e.blob")
    assert [(t.name, t.shape) for t in info.outputs] == [("output0", (1, 300, 6))]
    report = json.loads((tmp_path / "e2e.blob.report.json").read_text())
    assert report["onnx"]["opset"] == 18
    assert report["numeric"]["passed"], report["numeric"]
    kept = {step["name"] for step in report["ir"]["preparation"] if step["kept"]}
    assert {
        "convert to opset 17 (onnx version converter)",
        "GatherElements of a repeated index -> Gather",
        "integer Div of top-k indices -> table lookup",
        "integer Mod of top-k indices -> table lookup",
    } <= kept, kept


def test_rtdetr_is_refused_naming_its_grid_sample(exported, tmp_path):
    result = run_cli("convert", "--input", exported("rtdetr-l.yaml", "default"), "--output", tmp_path / "r.blob")
    assert result.returncode == 12, result.stderr  # was: OpenVINO 2022.3 crashed (SIGSEGV), MO: LayerNormalization
    line = result.stderr.splitlines()[0]
    assert "Traceback" not in result.stderr and "SIGSEGV" not in line
    for expected in ("GridSample", "/model.28/decoder/layers.0/", "the Myriad X has no sampler", "--output-names"):
        assert expected in line, line
    assert "YOLOv10 or YOLO26" in line
    assert not (tmp_path / "r.blob").exists()


@pytest.mark.unit
def test_the_index_rules_compute_what_onnx_runtime_computes_and_leave_other_integers_alone():
    """A top-k over a flattened 40 x 70 score map (indices to 2,799) split into row and column, and a
    gather of the expanded row index; an integer Div of a model input (its values unbounded) is not a
    top-k's index and stays."""
    import numpy as np
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    from myriad_blob.rules.onnx_rules import ONNX_RULES

    def const(name, value):
        return helper.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(np.asarray(value), name))

    nodes = [
        const("k", np.array([50], np.int64)),
        const("c", np.array(70, np.int64)),
        const("flat", np.array([1, -1], np.int64)),
        const("one", np.array([-1], np.int64)),
        const("wide", np.array([1, 50, 70], np.int64)),
        helper.make_node("Reshape", ["scores", "flat"], ["f"]),
        helper.make_node("TopK", ["f", "k"], ["v", "i"], axis=1),
        helper.make_node("Div", ["i", "c"], ["row"]),
        helper.make_node("Mod", ["i", "c"], ["col"]),
        helper.make_node("Unsqueeze", ["row", "one"], ["row3"]),
        helper.make_node("Expand", ["row3", "wide"], ["rows"]),
        helper.make_node("GatherElements", ["scores", "rows"], ["picked"], axis=1),
        helper.make_node("Div", ["n", "c"], ["other"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 40, 70]),
            helper.make_tensor_value_info("n", TensorProto.INT64, [1, 5]),
        ],
        [
            helper.make_tensor_value_info(name, elem, None)
            for name, elem in (
                ("row", TensorProto.INT64),
                ("col", TensorProto.INT64),
                ("picked", TensorProto.FLOAT),
                ("other", TensorProto.INT64),
            )
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    feeds = {
        "scores": np.random.default_rng(0).standard_normal((1, 40, 70)).astype(np.float32),
        "n": np.array([[-141, -1, 0, 69, 70000]], np.int64),
    }

    def run(m):
        return onnxruntime.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)

    expected, rewritten = run(model), model
    for name in ("GatherElements of a repeated index", "integer Div of top-k", "integer Mod of top-k"):
        rule = next(r for r in ONNX_RULES if r.name.startswith(name))
        assert rule.needed(rewritten).startswith(("1 ", "1 integer")), name
        rewritten = rule.rewrite(rewritten)
    ops = [node.op_type for node in rewritten.graph.node]
    assert "GatherElements" not in ops and "Expand" not in ops and "Mod" not in ops and ops.count("Div") == 1
    for want, got in zip(expected, run(rewritten)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.unit
@pytest.mark.parametrize("classes,divisor_shape,kept", [(365, [], True), (80, [1, 1, 1], False)])
def test_the_index_table_takes_objects365_and_never_changes_a_rank(classes, divisor_shape, kept):
    """Found in review: 300 picks over Objects365's 365 classes are 109,500 indices, past the first table
    bound (65,536): the Mod was then refused with advice that gives wrong numbers. A divisor of a higher
    rank than the indices would broadcast the Div's result up a rank: no table then."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from myriad_blob.rules.onnx_graph import Graph
    from myriad_blob.rules.onnx_rules import _index_table_plan

    picks = 300 * classes
    nodes = [
        helper.make_node("TopK", ["scores", "k"], ["values", "index"], name="/TopK", axis=-1),
        helper.make_node("Div", ["index", "nc"], ["anchor"], name="/Div"),
    ]
    constants = [
        numpy_helper.from_array(np.array([300], np.int64), "k"),
        numpy_helper.from_array(np.array(classes, np.int64).reshape(divisor_shape), "nc"),
    ]
    graph = helper.make_graph(
        nodes,
        "head",
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, picks])],
        [helper.make_tensor_value_info("anchor", TensorProto.INT64, None)],
        constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    table = _index_table_plan(Graph(model), model.graph.node[1])
    assert (table is not None) == kept
    if kept:
        assert table.shape == (picks,) and table[-1] == 299 and table[classes] == 1
