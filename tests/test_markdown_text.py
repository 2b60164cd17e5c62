"""One escape for Markdown (issue #24): whatever a model names, the report shows it as it is and
it does nothing there: no heading, mention, reference, link, image or hidden rest of the comment.
The Markdown is rendered with markdown-it-py (GFM tables, raw HTML on, as GitHub parses it)."""

import json
import re
import sys
from pathlib import Path

import pytest

from hostile_markdown import PAYLOAD, assert_safe, hostile_onnx, render, text_outside_code
from myriad_blob.batch import BatchResult, render_batch_markdown
from myriad_blob.errors import ConversionError, Stage
from myriad_blob.families.yolo.markdown import yolo_section
from myriad_blob.manifest import Variant
from myriad_blob.markdown_text import JOINER, NAME_LIMIT, code, fit, fold, html_code, markdown_table, message, text
from myriad_blob.report import ConversionReport, render_markdown

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from entrypoint import publish, runner  # noqa: E402

VALUES = [
    PAYLOAD,
    "`",
    "``a``",
    "a ` b `` c",
    " leading and trailing ",
    "back\\slash\\",
    "pipe | and \\| escaped",
    "*em* _em_ **strong** ~~struck~~ [link](https://x.example) ![img](x.png) $x^2$",
    "- list\r\n1. ordered\r> quote\u2028= setext",
    "owner/repo#1 GH-7 @user user@example.com www.example.com http://x.example",
    "&amp; &lt;b&gt; &#35;1",
    "tab\there\x00nul\u202eevil",
]


def cell(rendered: str) -> list[str]:
    """The text of each <code> element, entities decoded."""
    import html

    return [html.unescape(match) for match in re.findall(r"<code>(.*?)</code>", rendered, re.S)]


@pytest.mark.unit
@pytest.mark.parametrize("value", VALUES)
def test_a_code_span_shows_the_value_and_nothing_closes_it(value):
    for markdown in (f"name {code(value)} here", markdown_table(["", "name"], [["input", code(value)]])):
        rendered = render(markdown)
        assert cell(rendered) == [fold(value)], rendered
        assert re.sub(r"\s", "", text_outside_code(rendered)) in ("namehere", "nameinput")
    assert "\n" not in code(value) and "\r" not in code(value)


@pytest.mark.unit
@pytest.mark.parametrize("value", VALUES)
def test_text_shows_the_value_with_no_markdown_html_or_links(value):
    for markdown in (f"said: {text(value)}", markdown_table(["", "said"], [["x", text(value)]])):
        rendered = render(markdown)
        assert not re.search(r"<(?!/?(p|table|thead|tbody|tr|th|td)[ >])", rendered), rendered  # no tag of the value's
        shown = text_outside_code(rendered).replace(JOINER, "")
        assert fold(value).strip() in shown, (shown, rendered)


@pytest.mark.unit
def test_text_breaks_every_mention_reference_and_url():
    escaped = text("@org/team owner/repo#1 #12 GH-7 https://x.example www.example.com a@b.example")
    for linked in ("@org", "#1", "#12", "GH-7", "://x", "www.", "@b"):
        assert linked not in escaped.replace("\\", ""), linked


@pytest.mark.unit
def test_a_line_break_is_folded_and_a_long_value_capped():
    assert fold("a\r\nb\nc\rd\u2028e") == "a⏎b⏎c⏎d⏎e"
    long = "n" * 5000
    assert code(long) == f"`{'n' * (NAME_LIMIT - 1)}…`" and len(text(long)) == NAME_LIMIT


@pytest.mark.unit
def test_a_message_quotes_names_as_code_whatever_the_backticks():
    assert message("layer `conv1` (Conv) overflows") == "layer `conv1` (Conv) overflows"
    for quoted in (f"layer `{PAYLOAD}` failed: {PAYLOAD}", f"an odd `{PAYLOAD}", PAYLOAD * 3):
        rendered = render(f"> ⚠️ {message(quoted)}")
        assert set(re.findall(r"<(\w+)", rendered)) <= {"blockquote", "p", "code"}, rendered
        assert not re.search(r"@org|#12|https?://", text_outside_code(rendered))


@pytest.mark.unit
def test_a_summary_line_is_html_and_gets_html_code():
    rendered = render(f"<details><summary>largest ({html_code(PAYLOAD)})</summary>\n\nbody\n\n</details>")
    assert "<img" not in rendered and "<!--" not in rendered
    assert cell(rendered) == [fold(PAYLOAD)]


def _failed_report(payload: str) -> dict:
    """A compile that failed on a layer the model named, with the model's names everywhere the
    report shows them before there is a blob."""
    report = ConversionReport({"input": f"models/m{payload.replace('/', '∕')}.onnx"})
    report.source = {"path": report.options["input"], "format": "onnx", "size": 10, "sha256": "0" * 64}
    report.onnx = {
        "inputs": [{"name": "x" + payload, "shape": [1, "batch" + payload, 8, 8], "dtype": "float32"}],
        "outputs": [{"name": "y" + payload, "shape": [1, 4], "dtype": "float32"}],
    }
    report.ir = {
        "version": 10,
        "frontend": "mo2021",
        "frontend_fallback": f"OpenVINO 2022.3.1's reader failed: node `n{payload}`: {payload}",
        "preparation": [{"name": "onnxslim", "kept": False, "detail": f"failed on `{payload}`"}],
        "rewrites": [],
    }
    report.layers = {
        "unsupported": [{"name": "l" + payload, "type": "T" + payload, "onnx_node": "n" + payload, "onnx_op": payload}],
        "supported": 1,
        "total": 2,
        "queried": True,
        "by_type": {"Custom" + payload: {"count": 1, "unsupported": 1}},
    }
    report.warnings.append(f"the IR was made by Model Optimizer 2021.4: `{payload}` said {payload}")
    report.stages["ir"].status = "succeeded"
    report.stages["verify"].status, report.stages["verify"].error = "skipped", f"no blob: {payload}"
    report.fail(ConversionError(Stage.COMPILE, f"layer `l{payload}` ({payload}) is not supported: {payload}"))
    return report.to_dict()


@pytest.mark.unit
def test_a_failed_report_carries_none_of_the_models_markdown():
    markdown = render_markdown(_failed_report(PAYLOAD))
    rendered = assert_safe(markdown)
    # Every name is still shown in full, as code.
    shown = cell(rendered)
    for name in ("x", "y", "l", "n"):
        assert name + fold(PAYLOAD) in shown, name
    assert "**Failed** at stage `compile`" in markdown


@pytest.mark.unit
def test_yolo_class_names_and_metadata_are_escaped():
    yolo = {
        "family": "yolo11" + PAYLOAD,
        "task": "detect" + PAYLOAD,
        "trained_with": "8.3" + PAYLOAD,
        "n_classes": 2,
        "classes": ["person" + PAYLOAD, PAYLOAD],
        "strides": [8, 16, 32],
        "imgsz": [64, 64],
        "cut": "before the box decode",
        "outputs": ["out" + PAYLOAD],
        "preprocessing": "ultralytics' own",
        "detections": {
            "compared": True,
            "parted": 0,
            "matched": 1,
            "min_iou": 0.9,
            "mean_iou": 0.95,
            "image": "bus.jpg" + PAYLOAD,
            "input_size": [64, 64],
            "conf_threshold": 0.25,
            "iou_threshold": 0.45,
            "decoder": "depthai",
            "camera": 1,
            "ultralytics": 1,
            "max_score_difference": 0.01,
            "borderline": 0,
            "pairs": [{"class": 1, "iou": 0.9, "camera_score": 0.8, "ultralytics_score": 0.8}],
        },
    }
    markdown = "### myriad-blob: `best.pt`\n\n" + "\n".join(yolo_section(yolo))
    rendered = assert_safe(markdown)
    assert "person" + fold(PAYLOAD) in cell(rendered)


@pytest.mark.unit
def test_the_batch_report_escapes_variant_ids_and_their_verdicts():
    report = ConversionReport.from_dict({k: v for k, v in _failed_report(PAYLOAD).items() if k != "verdict"})
    variant = Variant(model="m" + PAYLOAD, name="v", options=None)
    summary = {"succeeded": 0, "failed": 1, "cached": 0, "total_s": 1.0}
    markdown = render_batch_markdown(summary, [BatchResult(variant, report)])
    assert_safe(markdown)
    (row,) = [line for line in markdown.splitlines() if line.startswith("| `")]
    assert row.count(" | ") == 1  # two cells: the verdict's `|`, if any, are escaped


def _long_report(rows: int) -> str:
    """A report whose layer table alone passes GitHub's comment limit."""
    report = _failed_report("")
    report["layers"]["by_type"] = {f"Type{i:05d}": {"count": i, "unsupported": 0} for i in range(rows)}
    report["layers"]["unsupported"] = [
        {"name": f"layer{i}", "type": "T", "onnx_node": f"node{i}", "onnx_op": "Op"} for i in range(rows)
    ]
    return render_markdown(report)


@pytest.mark.unit
def test_a_comment_past_65536_characters_cuts_its_tables_and_keeps_the_verdict():
    markdown = _long_report(3000)
    assert len(markdown) > 2 * publish.COMMENT_LIMIT
    body = publish.fit_comment(f"{publish.marker('m.onnx')}\n{markdown}")
    assert len(body) <= publish.COMMENT_LIMIT
    assert body.startswith(publish.marker("m.onnx") + "\n### myriad-blob: `m.onnx`\n\n❌ **Failed** at stage")
    kept_rows = {
        "layer": len(re.findall(r"^\| `layer\d+`", body, re.M)),
        "type": len(re.findall(r"^\| Type\d+", body, re.M)),
    }
    more = [int(n) for n in re.findall(r"^\| … (\d+) more rows \|", body, re.M)]
    assert more == [3000 - kept_rows["layer"], 3000 - kept_rows["type"]] and all(more)
    assert kept_rows["layer"] > 100  # the tables were cut, not the report
    for heading in ("**Stages**", "layer(s) the plugin's query lists as unsupported", "Layer support:", "Details:"):
        assert heading in body, heading
    # The "more" rows are table rows (as many cells as the header), and the <details> close.
    rendered = render(body)
    assert rendered.count("<details>") == rendered.count("</details>")
    assert re.search(r"<td>… \d+ more rows</td>\s*<td></td>\s*<td></td>\s*</tr>", rendered)
    assert publish.fit_comment(markdown[:5000]) == markdown[:5000]  # one that fits is as it was


@pytest.mark.unit
def test_a_report_with_no_table_to_cut_is_cut_at_a_line_and_closes_its_details():
    lines = ["line " * 30, f"- layer {code('<details>')}"] * 1000  # a name reading <details> opens nothing
    markdown = "### title\n\nverdict\n\n<details><summary>s</summary>\n\n" + "\n".join(lines)
    body = fit(markdown, 65536, "*(cut)*")
    assert len(body) <= 65536 and body.startswith("### title\n\nverdict\n") and body.endswith("</details>\n\n*(cut)*")
    assert body.count("\n</details>") == 1


@pytest.mark.unit
def test_the_step_summary_stays_within_a_mebibyte(tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    markdown = _long_report(20000).replace("Type", "Typ€€€€€€€€")  # multi-byte: the limit is in bytes
    assert len(markdown.encode()) > runner.SUMMARY_LIMIT
    runner.append_summary(markdown)
    written = summary.read_bytes()
    assert len(written) <= runner.SUMMARY_LIMIT and b"more rows |" in written
    assert written.decode().startswith("### myriad-blob: `m.onnx`")


@pytest.mark.unit
def test_the_comment_marker_cannot_be_closed_by_the_model_path():
    rendered = render(publish.marker("models/a-->b <img src=x>.onnx") + "\n\ntext")
    assert "<img" not in rendered.split("-->")[1] and rendered.count("-->") == 1


def test_a_hostile_onnx_converts_and_its_report_carries_none_of_its_names_markdown(tmp_path):
    from conftest import run_cli

    model = hostile_onnx(tmp_path / "hostile.onnx")
    result = run_cli("convert", "--input", model, "--output", tmp_path / "out" / "h.blob")
    assert result.returncode == 0, result.stderr
    markdown = (tmp_path / "out" / "h.blob.report.md").read_text()
    rendered = assert_safe(markdown)
    shown = cell(rendered)
    for name in ("x", "y", "conv", "relu"):  # shown, in full, as code: in the tables and the FP16 summary
        assert name + fold(PAYLOAD) in shown, name
    report = json.loads((tmp_path / "out" / "h.blob.report.json").read_text())
    assert report["blob"]["header"]["inputs"][0]["name"] == "x" + PAYLOAD  # the JSON keeps the names as they are


@pytest.mark.unit
def test_a_report_from_a_pull_requests_run_carries_none_of_its_markdown():
    """comment-from renders a report JSON that a pull request's own run wrote: every field is the
    author's, within the report's types. Before: the sha256s and the layer counts (dict[str, Any])
    went in raw, a `</details>` and a heading with a team mention among them."""
    report = _failed_report("")
    report["source"]["sha256"] = "0" + PAYLOAD
    report["layers"]["supported"] = report["layers"]["total"] = "1" + PAYLOAD
    report["ir"]["rewrites"] = [{"rule": "r", "layers": "1" + PAYLOAD}]
    assert_safe(render_markdown(report))
