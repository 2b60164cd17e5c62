"""Transformers that compile in seconds (issue #28): a token-wise Linear whose rows the Myriad plugin
would copy into one stage each becomes a 1x1 convolution, the report gives the compile's stage count,
and a compile whose count explodes (or times out) names the layer. The models are built from
transformers' and timm's configs with seeded random weights (no download) and exported as a user would."""

import json
from pathlib import Path

import onnx
import pytest
import torch

from conftest import run_cli
from corpus import torchvision_models
from myriad_blob.compile import _row_split_cause
from myriad_blob.export_onnx import describe_onnx
from myriad_blob.rules.onnx_rules import row_split_matmuls

RULE = "token-wise MatMul by a constant -> 1x1 Conv"


class TokenLinear(torch.nn.Module):
    """A feature map's pixels as tokens through one nn.Linear (a transformer's MLP or projection)."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.fc = torch.nn.Linear(channels, channels)

    def forward(self, x):
        n, _, h, w = x.shape
        tokens = self.fc(x.flatten(2).transpose(1, 2))  # [1, h * w, c]
        return tokens.transpose(1, 2).reshape(n, -1, h, w)


class RowsLinear(torch.nn.Module):
    """The same Linear over a 2-D [rows, C] matrix: exported as a Gemm (as nn.MultiheadAttention's out_proj)."""

    def __init__(self, channels: int = 32):
        super().__init__()
        self.fc = torch.nn.Linear(channels, channels)

    def forward(self, x):
        n, c, h, w = x.shape
        rows = self.fc(x.reshape(c, h * w).transpose(0, 1))  # [h * w, c]
        return rows.transpose(0, 1).reshape(n, c, h, w)


def _export(model: torch.nn.Module, shape, path: Path) -> Path:
    torch.manual_seed(0)
    with torch.no_grad():
        torch.onnx.export(model.eval(), (torch.rand(*shape),), str(path), opset_version=14, dynamo=False)
    return path


def _convert(path: Path, *flags):
    blob = path.with_suffix(".blob")
    result = run_cli("convert", "--input", path, "--output", blob, "--input-type", "FP16", *flags)
    report_path = blob.with_name(blob.name + ".report.json")
    return result, json.loads(report_path.read_text()) if report_path.exists() else None


def _kept(report) -> list[str]:
    return [step["name"] for step in report["ir"]["preparation"] if step["kept"]]


def test_token_wise_linear_compiles_to_a_handful_of_stages(tmp_path):
    # 1,024 tokens (not a multiple of 10): the plugin made 1,026 stages, one per row (4-15 s to compile).
    torch.manual_seed(0)
    path = _export(TokenLinear(), (1, 64, 32, 32), tmp_path / "token_linear.onnx")
    assert [rows for _, rows in row_split_matmuls(onnx.load(str(path)))] == [1024]
    result, report = _convert(path, "--strict")
    assert result.returncode == 0, result.stderr
    assert RULE in _kept(report)
    assert report["compile"]["stages"] <= 10 and report["compile"]["row_copies"] == []
    assert report["numeric"]["passed"] and report["verdict"]["result"] == "passed"
    assert "**Compile**: " in tmp_path.joinpath("token_linear.blob.report.md").read_text()


def test_a_gemm_over_rows_compiles_to_a_handful_of_stages(tmp_path):
    # Found in the final read (case21's nn.MultiheadAttention): the 2-D Gemm of a Linear over 256 rows was
    # left to the plugin, which copied it into 256 stages and the verdict said warnings.
    torch.manual_seed(0)
    path = _export(RowsLinear(), (1, 32, 16, 16), tmp_path / "rows_linear.onnx")
    assert [rows for _, rows in row_split_matmuls(onnx.load(str(path)))] == [256]
    result, report = _convert(path, "--strict")
    assert result.returncode == 0, result.stderr
    assert RULE in _kept(report)
    assert report["compile"]["stages"] <= 10 and report["compile"]["row_copies"] == []
    assert report["verdict"]["result"] == "passed", report["verdict"]


def test_exploded_stage_count_names_the_layer(tmp_path):
    # A Gemm over 256 rows with alpha 0.5, which the rule leaves (it takes alpha = beta = 1): the plugin
    # copies it into 256 stages (385 with their DMA copies).
    torch.manual_seed(0)
    path = _export(RowsLinear(), (1, 32, 16, 16), tmp_path / "rows_linear.onnx")
    model = onnx.load(str(path))
    (gemm,) = [node for node in model.graph.node if node.op_type == "Gemm"]
    (alpha,) = [attribute for attribute in gemm.attribute if attribute.name == "alpha"]
    alpha.f = 0.5
    onnx.save(model, str(path))
    result, report = _convert(path)
    assert result.returncode == 0, result.stderr
    section = report["compile"]
    assert section["stages"] > 256 and section["ir_layers"] < 10
    (copied,) = section["row_copies"]
    assert copied["rows"] == 256 and copied["stages"] >= 256
    assert copied["onnx_op"] == "Gemm" and copied["module"] == "fc"
    (finding,) = [f for f in report["findings"] if f["check"] == "stage count"]
    assert "once per row" in finding["message"] and "PyTorch module `fc`" in finding["message"]
    assert report["verdict"]["result"] == "warnings"


@pytest.mark.unit
def test_compile_timeout_names_the_matmul_the_rule_left(tmp_path):
    # The timeout said only "the model may be too large for the Myriad X".
    torch.manual_seed(0)
    path = _export(TokenLinear(), (1, 64, 32, 32), tmp_path / "token_linear.onnx")
    cause = _row_split_cause((describe_onnx(path, exported=True),))
    assert "`/fc/MatMul` (PyTorch module `fc`), 1,024 rows" in cause and "multiple of 10" in cause


def _segformer():
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = SegformerForSemanticSegmentation(SegformerConfig())

        def forward(self, x):
            return self.model(pixel_values=x).logits

    return Logits(), (1, 3, 256, 256)


def _swin():
    import timm

    return timm.create_model("swin_tiny_patch4_window7_224", pretrained=False), (1, 3, 224, 224)


def _mobilevit():
    import timm

    return timm.create_model("mobilevit_xxs", pretrained=False), (1, 3, 256, 256)


@pytest.mark.parametrize("build", [_segformer, _swin, _mobilevit], ids=["segformer-b0", "swin-tiny", "mobilevit-xxs"])
def test_transformer_compiles_without_copied_rows(tmp_path, build):
    # Each ran the compiler past 10 minutes (SegFormer-b0 at 256: ~132,000 stages, hours).
    torchvision_models()  # timm and transformers import torchvision: its ops declared first
    torch.manual_seed(0)
    model, shape = build()
    path = _export(model, shape, tmp_path / "model.onnx")
    exploded = sum(rows for _, rows in row_split_matmuls(onnx.load(str(path))))
    assert exploded > 1000
    result, report = _convert(path, "--compile-timeout", "120")
    assert result.returncode == 0, result.stderr
    assert RULE in _kept(report)
    assert report["numeric"]["outputs_passed"], report["numeric"]["outputs"]
    assert report["compile"]["stages"] < exploded / 10 and report["compile"]["row_copies"] == []
