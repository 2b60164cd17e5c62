"""A model's names as an attacker writes them (issue #24), the small ONNX model that carries them,
and the check that a Markdown report (or PR comment, or step summary) built from them carries
none of the payload's Markdown or HTML: rendered with markdown-it-py as GitHub's GFM renders it."""

import html.parser
import re

import numpy as np
import onnx
from markdown_it import MarkdownIt
from onnx import TensorProto, helper, numpy_helper

# A backtick to close our code span, a newline to start a heading, a team ping, an image, an
# issue reference, a bare URL and a comment left open to hide the rest.
PAYLOAD = "`\n## ✅ Approved @org/team <img src=x onerror=alert(1)> #12 https://evil.example <!--"


def hostile_onnx(path, payload: str = PAYLOAD):
    """Conv + Relu whose input, output, weight, intermediate tensor, nodes, graph and producer
    names all end in the payload."""
    weight = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x" + payload, "w" + payload], ["c" + payload], name="conv" + payload, pads=[1] * 4),
        helper.make_node("Relu", ["c" + payload], ["y" + payload], name="relu" + payload),
    ]
    graph = helper.make_graph(
        nodes,
        "graph" + payload,
        [helper.make_tensor_value_info("x" + payload, TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y" + payload, TensorProto.FLOAT, [1, 4, 16, 16])],
        [numpy_helper.from_array(weight, "w" + payload)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="p" + payload)
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def render(markdown: str) -> str:
    """GFM as GitHub renders it: raw HTML allowed (GitHub sanitizes it afterwards, keeping <img>,
    <details> and comments), tables, strikethrough."""
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(markdown)


class _Text(html.parser.HTMLParser):
    """The rendered HTML's text outside <code>: where GitHub links mentions and references."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth, self.outside = 0, []

    def handle_starttag(self, tag, attrs):
        self.depth += tag == "code"

    def handle_endtag(self, tag):
        self.depth -= tag == "code"

    def handle_data(self, data):
        if not self.depth:
            self.outside.append(data)


def text_outside_code(rendered: str) -> str:
    parser = _Text()
    parser.feed(rendered)
    return "".join(parser.outside)


def assert_safe(markdown: str, headings: int = 1, comments: int = 0) -> str:
    """No payload heading, image, comment, mention, reference or link; no payload line break in a
    table row. `headings`: the headings that are ours; `comments`: our own hidden markers.
    Returns the rendered HTML for further checks."""
    lines = markdown.splitlines()
    assert [line for line in lines if line.lstrip().startswith("#")][headings:] == []
    for line in lines:  # the payload's newline folded (or a repr's \n), so what follows it stays on its line
        if "Approved" in line:
            assert re.search(r"⏎|\\n", line[: line.index("Approved")]), line
    rendered = render(markdown)
    assert len(re.findall(r"<h[1-6]", rendered)) == headings, rendered
    assert "<img" not in rendered and "<a " not in rendered
    assert rendered.count("<!--") == comments
    outside = text_outside_code(rendered)
    assert not re.search(r"@org|#12|https?://|www\.", outside), outside
    return rendered
