"""The corpus: real architectures users bring, each converted for real and checked on the blob.

Each model converts with the OpenVINO 2022.3 front end (no silent fallback), depthai reads the blob
with the model's input and output names and dims, and the numeric check passes on outputs at
realistic scales.
"""

import json

import pytest

from conftest import run_cli
from corpus import CORPUS, shape_flag
from test_convert import assert_depthai_agrees


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("corpus")


@pytest.mark.parametrize("model", CORPUS, ids=[m.name for m in CORPUS])
def test_corpus_model_converts_and_matches(model, corpus_dir):
    path = model.save(corpus_dir)
    blob = corpus_dir / "out" / f"{model.name}.blob"
    result = run_cli(
        "convert", "--input", path, "--input-shape", shape_flag(model), "--output", blob, "--strict", *model.flags
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(blob.with_name(blob.name + ".report.json").read_text())
    assert report["ir"]["frontend"] == "ov2022", report["ir"]["frontend_fallback"]

    info = assert_depthai_agrees(blob)
    onnx_inputs = {t["name"]: t for t in report["onnx"]["inputs"]}
    onnx_outputs = {t["name"]: t for t in report["onnx"]["outputs"]}
    # The blob's inputs and outputs carry the model's own names, at the converted shapes.
    assert [t.name for t in info.inputs] == list(onnx_inputs)
    assert [t.shape for t in info.inputs] == [tuple(model.shape)]
    assert sorted(t.name for t in info.outputs) == sorted(onnx_outputs)
    for output in info.outputs:
        numeric = next(o for o in report["numeric"]["outputs"] if o["name"] == output.name)
        assert list(output.shape) == numeric["shape"]

    numeric = report["numeric"]
    assert numeric["passed"], numeric
    for output in numeric["outputs"]:
        assert output["cosine"] >= 0.999 and output["max_relative_error"] <= 0.02
    assert report["warnings"] == []
