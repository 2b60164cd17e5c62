"""The op sweep: one micro-model per op and per form that matters, converted by the real pipeline.

Each case is a few lines of PyTorch (what users write) around one op, traced to TorchScript and
converted exactly as `myriad-blob convert` would (export, ONNX preparation, IR, compile, numeric
check). The result is classified:
  native         converts with no rule applied, numeric check passed
  rewritten      converts after the named ONNX-level or IR-level rules, numeric check passed
  numbers differ converts, but the numeric check misses (a finding, not a pass)
  refused        fails; the stage and the one-line message, which names the fix
`make op-table` writes the README's "Supported ops" table from a full run (python -m
myriad_blob.rules.sweep --readme README.md); tests/test_op_sweep.py keeps a representative part.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from readme_section import replace_section

from myriad_blob.options import parse_options
from myriad_blob.pipeline import Session, convert
from myriad_blob.toolchain import locate

SHAPE = (1, 3, 32, 32)


@dataclasses.dataclass(frozen=True)
class SweepCase:
    name: str  # the PyTorch code, as users write it
    onnx_op: str  # what torch.onnx.export writes for it
    forward: Callable  # (module, x) -> output; module has conv (3 -> 8 channels) and fc for convenience
    shape: tuple = SHAPE
    opset: int | None = None  # None: the converter's default


def _cases() -> tuple[SweepCase, ...]:
    import torch
    import torch.nn.functional as F

    t = torch

    def conv(m, x):
        return m.conv(x / 255.0)  # [1, 8, 32, 32], values around +-1

    return (
        SweepCase("nn.Conv2d", "Conv", lambda m, x: conv(m, x)),
        SweepCase("nn.Conv2d(groups=8) (depthwise)", "Conv", lambda m, x: m.depthwise(conv(m, x))),
        SweepCase("nn.Conv2d(dilation=2)", "Conv", lambda m, x: m.dilated(conv(m, x))),
        SweepCase("nn.ConvTranspose2d", "ConvTranspose", lambda m, x: m.deconv(conv(m, x))),
        SweepCase("nn.Linear", "Gemm/MatMul", lambda m, x: m.fc(conv(m, x).mean((2, 3)))),
        SweepCase(
            "torch.matmul (activations)", "MatMul", lambda m, x: t.matmul(conv(m, x), conv(m, x).transpose(2, 3))
        ),
        SweepCase("nn.BatchNorm2d", "BatchNormalization", lambda m, x: m.bn(conv(m, x))),
        SweepCase("nn.LayerNorm", "LayerNormalization / ReduceMean...", lambda m, x: m.ln(conv(m, x))),
        SweepCase("nn.GroupNorm", "InstanceNormalization+Reshape", lambda m, x: m.gn(conv(m, x))),
        SweepCase("F.relu", "Relu", lambda m, x: F.relu(conv(m, x))),
        SweepCase("F.relu6", "Clip", lambda m, x: F.relu6(conv(m, x) * 4)),
        SweepCase("F.leaky_relu", "LeakyRelu", lambda m, x: F.leaky_relu(conv(m, x), 0.1)),
        SweepCase("nn.PReLU", "PRelu", lambda m, x: m.prelu(conv(m, x))),
        SweepCase("F.elu", "Elu", lambda m, x: F.elu(conv(m, x))),
        SweepCase("F.gelu", "Erf (Gelu)", lambda m, x: F.gelu(conv(m, x))),
        SweepCase("F.silu", "Sigmoid+Mul", lambda m, x: F.silu(conv(m, x))),
        SweepCase("F.hardswish", "HardSwish", lambda m, x: F.hardswish(conv(m, x) * 3)),
        SweepCase("F.hardsigmoid", "HardSigmoid", lambda m, x: F.hardsigmoid(conv(m, x) * 3)),
        SweepCase("F.mish", "Mish", lambda m, x: F.mish(conv(m, x))),
        SweepCase("torch.sigmoid", "Sigmoid", lambda m, x: t.sigmoid(conv(m, x))),
        SweepCase("torch.tanh", "Tanh", lambda m, x: t.tanh(conv(m, x))),
        SweepCase("F.softplus", "Softplus", lambda m, x: F.softplus(conv(m, x))),
        SweepCase("F.softmax(dim=1)", "Softmax", lambda m, x: F.softmax(conv(m, x) * 3, 1)),
        SweepCase("F.softmax(dim=-1)", "Softmax (negative axis)", lambda m, x: F.softmax(conv(m, x) * 3, -1)),
        SweepCase("F.log_softmax", "LogSoftmax", lambda m, x: F.log_softmax(conv(m, x), 1)),
        SweepCase("F.max_pool2d", "MaxPool", lambda m, x: F.max_pool2d(conv(m, x), 2)),
        SweepCase("F.avg_pool2d", "AveragePool", lambda m, x: F.avg_pool2d(conv(m, x), 2)),
        SweepCase("F.adaptive_avg_pool2d(1)", "GlobalAveragePool", lambda m, x: F.adaptive_avg_pool2d(conv(m, x), 1)),
        SweepCase("F.interpolate(nearest, x2)", "Resize", lambda m, x: F.interpolate(conv(m, x), scale_factor=2.0)),
        SweepCase(
            "F.interpolate(bilinear)",
            "Resize",
            lambda m, x: F.interpolate(conv(m, x), size=(48, 40), mode="bilinear", align_corners=False),
        ),
        SweepCase("F.pixel_shuffle", "DepthToSpace", lambda m, x: F.pixel_shuffle(conv(m, x), 2)),
        SweepCase("F.pixel_unshuffle", "SpaceToDepth", lambda m, x: F.pixel_unshuffle(conv(m, x), 2)),
        SweepCase("torch.cat", "Concat", lambda m, x: t.cat([conv(m, x), x / 255.0], 1)),
        SweepCase("torch.split / chunk", "Split", lambda m, x: t.chunk(conv(m, x), 2, 1)[1] * 2),
        SweepCase("slice with step (x[:, :, ::2])", "Slice", lambda m, x: conv(m, x)[:, :, ::2]),
        SweepCase("scalar index (x[:, 0])", "Gather (scalar)", lambda m, x: conv(m, x)[:, 0]),
        SweepCase("negative scalar index (x[:, :, -1])", "Gather (negative)", lambda m, x: conv(m, x)[:, :, -1]),
        SweepCase("index_select (channel reorder)", "Gather", lambda m, x: conv(m, x.index_select(1, m.order))),
        SweepCase(
            "torch.gather(dim=-1)",
            "GatherElements (negative axis)",
            lambda m, x: t.gather(conv(m, x), -1, m.gather_index.expand(1, 8, 32, 4)),
        ),
        SweepCase("flatten + reshape", "Reshape", lambda m, x: conv(m, x).flatten(2).reshape(1, 16, 512)),
        SweepCase("permute", "Transpose", lambda m, x: conv(m, x).permute(0, 2, 3, 1)),
        SweepCase("unsqueeze / squeeze", "Unsqueeze/Squeeze", lambda m, x: conv(m, x).unsqueeze(1).squeeze(1) * 2),
        SweepCase("expand", "Expand", lambda m, x: conv(m, x).mean(1, keepdim=True).expand(1, 4, 32, 32)),
        SweepCase("repeat", "Tile", lambda m, x: conv(m, x).repeat(1, 2, 1, 1)),
        SweepCase("F.pad (constant)", "Pad", lambda m, x: F.pad(conv(m, x), (1, 2, 3, 4))),
        SweepCase("F.pad (reflect)", "Pad (reflect)", lambda m, x: F.pad(conv(m, x), (2, 2, 2, 2), mode="reflect")),
        SweepCase("F.pad (replicate)", "Pad (edge)", lambda m, x: F.pad(conv(m, x), (2, 2, 2, 2), mode="replicate")),
        SweepCase("mean over channels", "ReduceMean", lambda m, x: conv(m, x).mean(1, keepdim=True)),
        SweepCase("sum over channels", "ReduceSum", lambda m, x: conv(m, x).sum(1)),
        SweepCase("mean over H, W", "ReduceMean", lambda m, x: conv(m, x).mean((2, 3))),
        SweepCase("amax", "ReduceMax", lambda m, x: conv(m, x).amax(1)),
        SweepCase("argmax (class map)", "ArgMax", lambda m, x: (conv(m, x) * 8).argmax(1)),
        SweepCase("topk (constant k)", "TopK", lambda m, x: t.topk(conv(m, x).flatten(1), 10)[0]),
        SweepCase(
            "topk (k from a shape)",
            "TopK (K computed)",
            lambda m, x: t.topk(conv(m, x).flatten(1), min(300, conv(m, x).flatten(1).shape[1] // 8))[0],
        ),
        SweepCase("torch.cumsum", "CumSum", lambda m, x: t.cumsum(t.sigmoid(conv(m, x)), 3) / 32),
        SweepCase("torch.abs", "Abs", lambda m, x: t.abs(conv(m, x))),
        SweepCase("exp / log", "Exp/Log", lambda m, x: t.log(t.exp(conv(m, x)) + 1)),
        SweepCase("sqrt / pow", "Sqrt/Pow", lambda m, x: t.sqrt(conv(m, x) ** 2 + 1)),
        SweepCase("division", "Div", lambda m, x: conv(m, x) / (t.sigmoid(conv(m, x)) + 0.5)),
        SweepCase("torch.clamp", "Clip", lambda m, x: conv(m, x).clamp(-0.5, 0.5)),
        SweepCase(
            "torch.maximum / minimum",
            "Max/Min",
            lambda m, x: t.maximum(conv(m, x), t.minimum(conv(m, x), x[:, :1] / 255)),
        ),
        SweepCase("torch.where (mask)", "Where", lambda m, x: t.where(conv(m, x) > 0, conv(m, x), conv(m, x) * 0.1)),
        SweepCase("masked_fill", "Where", lambda m, x: conv(m, x).masked_fill(conv(m, x) < 0, 0.0)),
        SweepCase("in-place slice assignment", "ScatterND", lambda m, x: _assign(conv(m, x))),
        SweepCase("torch.flip", "Slice (negative step)", lambda m, x: t.flip(conv(m, x), [3])),
        SweepCase("torch.roll", "Slice+Concat", lambda m, x: t.roll(conv(m, x), 3, 3)),
        SweepCase("torch.einsum", "Einsum", lambda m, x: t.einsum("bchw,bdhw->bcd", conv(m, x), conv(m, x))),
        SweepCase("sin/cos of a sigmoid (OBB angle)", "Sin/Cos (bounded)", lambda m, x: _angle(t.sigmoid(conv(m, x)))),
        SweepCase("sin of any value", "Sin (unbounded)", lambda m, x: t.sin(conv(m, x) * 4)),
        SweepCase("floor / round", "Floor/Round", lambda m, x: t.floor(conv(m, x) * 4) + t.round(conv(m, x) * 4)),
        SweepCase("sign", "Sign", lambda m, x: t.sign(conv(m, x))),
        SweepCase("reciprocal", "Reciprocal", lambda m, x: t.reciprocal(t.sigmoid(conv(m, x)) + 1)),
        SweepCase("nn.LSTM", "LSTM", lambda m, x: m.lstm(conv(m, x).mean(2).permute(0, 2, 1))[0]),
        SweepCase(
            "nn.LSTM(bidirectional)",
            "LSTM (bidirectional)",
            lambda m, x: m.bilstm(conv(m, x).mean(2).permute(0, 2, 1))[0],
        ),
        SweepCase("nn.GRU", "GRU", lambda m, x: m.gru(conv(m, x).mean(2).permute(0, 2, 1))[0]),
        SweepCase(
            "nn.GRU(bidirectional), final state",
            "GRU (bidirectional)",
            lambda m, x: m.bigru(conv(m, x).mean(2).permute(0, 2, 1))[1],
        ),
        SweepCase(
            "F.scaled_dot_product_attention",
            "MatMul+Softmax",
            lambda m, x: F.scaled_dot_product_attention(*([conv(m, x).flatten(2).transpose(1, 2)] * 3)),
        ),
        SweepCase("F.grid_sample", "GridSample", lambda m, x: F.grid_sample(conv(m, x), m.grid, align_corners=False)),
        SweepCase("torch.nonzero", "NonZero", lambda m, x: t.nonzero(conv(m, x) > 0).float()),
    )


def _assign(y):
    y = y.clone()
    y[:, 0:2] = y[:, 0:2] * 2 - 0.5
    return y


def _angle(p):
    angle = (p - 0.25) * 3.141592653589793
    return __import__("torch").cat([angle.sin(), angle.cos()], 1)


def _micro_module():
    import torch
    import torch.nn as nn

    torch.manual_seed(5)

    class Micro(nn.Module):
        def __init__(self, forward):
            super().__init__()
            self._forward = forward
            self.conv = nn.Conv2d(3, 8, 3, 1, 1)
            self.depthwise = nn.Conv2d(8, 8, 3, 1, 1, groups=8)
            self.dilated = nn.Conv2d(8, 8, 3, 1, 2, dilation=2)
            self.deconv = nn.ConvTranspose2d(8, 4, 2, 2)
            self.fc = nn.Linear(8, 5)
            self.bn = nn.BatchNorm2d(8).eval()
            self.ln = nn.LayerNorm(32)
            self.gn = nn.GroupNorm(2, 8)
            self.prelu = nn.PReLU(8)
            self.lstm = nn.LSTM(8, 8, batch_first=True)
            self.bilstm = nn.LSTM(8, 8, batch_first=True, bidirectional=True)
            self.gru = nn.GRU(8, 8, batch_first=True)
            self.bigru = nn.GRU(8, 8, batch_first=True, bidirectional=True)
            self.register_buffer("order", torch.tensor([2, 1, 0]))
            self.register_buffer("gather_index", torch.tensor([0, 5, 9, 31]).view(1, 1, 1, 4))
            ys, xs = torch.meshgrid(torch.linspace(-0.9, 0.9, 16), torch.linspace(-0.8, 0.8, 16), indexing="ij")
            self.register_buffer("grid", torch.stack([xs, ys], -1)[None])

        def forward(self, x):
            return self._forward(self, x)

    return Micro


def save_case(case: SweepCase, directory: Path) -> Path:
    import torch

    module = _micro_module()(case.forward).eval()
    example = torch.rand(case.shape) * 255
    path = directory / (_slug(case.name) + ".pt")
    with torch.no_grad():
        traced = torch.jit.trace(module, example, check_trace=False)
    torch.jit.save(traced, str(path))
    return path


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")[:60]


def classify(report: dict) -> tuple[str, str]:
    """(result, detail) of one conversion's report."""
    if report["status"] != "succeeded":
        error = report["error"]
        return "refused", f"{error['stage']}: {error['message']}"
    rules = [s["name"] for s in report["ir"]["preparation"] if s["kept"] and s["name"] != "graph edits"]
    rules += [r["rule"] for r in report["ir"]["rewrites"]]
    if report["ir"].get("frontend") != "ov2022":
        rules.append("Model Optimizer 2021.4 front end")
    numeric = report["numeric"]
    if not numeric["outputs_passed"]:
        notes = "; ".join(
            f"{o['name']}: cosine {o['cosine']:.4f}" + (f", {o['note']}" if o.get("note") else "")
            for o in numeric["outputs"]
            if not o["passed"]
        )
        return "numbers differ", notes
    return ("rewritten", ", ".join(rules)) if rules else ("native", "")


def run_sweep(cases, workdir: Path, toolchain_dir: Path | None = None, log=print) -> list[dict]:
    """Convert every case; a row per case: name, onnx_op, result, detail, seconds."""
    import warnings

    warnings.filterwarnings("ignore")
    rows = []
    session = Session.for_batch(workdir / "session", locate(toolchain_dir), 1)
    try:
        for case in cases:
            started = time.perf_counter()
            path = save_case(case, workdir)
            options = parse_options(
                input=path,
                output=workdir / (path.stem + ".blob"),
                input_shapes=(json.dumps(list(case.shape)),),
                **({"opset": case.opset} if case.opset else {}),
            )
            report = convert(options, toolchain_dir, session).to_dict()
            result, detail = classify(report)
            rows.append(
                {
                    "name": case.name,
                    "onnx_op": case.onnx_op,
                    "result": result,
                    "detail": detail,
                    "seconds": round(time.perf_counter() - started, 2),
                }
            )
            log(f"{case.name}: {result} {detail[:160]}")
    finally:
        session.close()
    return rows


SECTION = "supported-ops"  # the README's section (readme_section.py)
_ICONS = {
    "native": "✅ native",
    "rewritten": "✅ rewritten",
    "numbers differ": "⚠️ numbers differ",
    "refused": "❌ refused",
}


def markdown(rows: list[dict]) -> str:
    lines = ["| PyTorch code | ONNX op | result | rules applied, or the error (what to change) |", "|---|---|---|---|"]
    for row in rows:
        detail = row["detail"].replace("|", "\\|")
        lines.append(f"| `{row['name']}` | {row['onnx_op']} | {_ICONS[row['result']]} | {detail} |")
    return "\n".join(lines)


def write_readme(readme: Path, rows: list[dict]) -> None:
    replace_section(readme, SECTION, markdown(rows))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, help="write the table into this README, between its markers")
    parser.add_argument("--only", action="append", default=[], help="cases whose name contains this (repeatable)")
    parser.add_argument("--json", type=Path, help="write the rows as JSON")
    args = parser.parse_args(argv)
    cases = [c for c in _cases() if not args.only or any(o in c.name for o in args.only)]
    with tempfile.TemporaryDirectory(prefix="myriad-blob-sweep-") as tmp:
        rows = run_sweep(cases, Path(tmp))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if args.readme:
        write_readme(args.readme, rows)
    counts = {kind: sum(r["result"] == kind for r in rows) for kind in _ICONS}
    print(", ".join(f"{n} {kind}" for kind, n in counts.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
