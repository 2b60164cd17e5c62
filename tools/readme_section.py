"""The README's generated sections: text between `<!-- NAME:start -->` and `<!-- NAME:end -->`,
written by the tools that measure it (op_sweep.py, onnx_suite.py, corpus_table.py)."""

from __future__ import annotations

from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def section(text: str, name: str) -> str:
    """What the README holds between the markers of name (ValueError when they are missing)."""
    start, end = markers(name)
    if start not in text or end not in text:
        raise ValueError(f"the README has no {start} ... {end} section")
    return text.split(start, 1)[1].split(end, 1)[0]


def replace_section(readme: Path, name: str, body: str) -> None:
    """Put body between the markers of name, replacing what was there."""
    text = readme.read_text()
    section(text, name)  # both markers are there
    start, end = markers(name)
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    readme.write_text(f"{before}{start}\n{body}\n{end}{after}")
