"""Strings a model controls, made safe for the Markdown report (and the PR comment it becomes).

A model file names its inputs, outputs, layers and nodes; a checkpoint names its classes and
carries metadata; a tool's error quotes them. Any of it may hold a backtick, a newline,
`## ✅ Approved`, `@org/team`, `#123`, `<img src=x>` or an unclosed `<!--`. Every such string
goes through one of these before it reaches Markdown:

- code(value): a code span that the value cannot close (its fence is longer than any run of
  backticks inside, as CommonMark allows); inside a code span HTML, mentions and autolinks are
  inert.
- text(value): plain text with every Markdown and HTML character escaped, and a word joiner
  (U+2060) after each `@`, `#`, `GH-`, the `:` of `://`, and `www` so GitHub links no mention, team,
  issue or URL.
- message(value): one of our messages, which quote names between backticks: each quoted part
  a code span, the rest text. The model decides nothing but where the spans fall.
- html_code(value): for raw HTML such as a <summary>, where Markdown is not parsed.

Each folds line breaks to ⏎ (a newline would start a heading or end a table row), replaces
other control and bidirectional-override characters, and cuts the value to a length cap with "…".
`|` is escaped by markdown_table (below), where it matters and where `\\|` works inside code
spans too. fit() cuts a whole report to a size limit.
"""

from __future__ import annotations

import html
import re

NAME_LIMIT = 200  # a name, a class, a path: characters kept before "…"
MESSAGE_LIMIT = 1000  # an error message or warning
JOINER = "\u2060"  # WORD JOINER: invisible, and breaks GitHub's mention, reference and URL matching

_LINE_BREAKS = re.compile(r"\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
# C0/C1 controls (tab aside) and the bidirectional overrides that reorder what a reviewer sees.
_INVISIBLE = re.compile(r"[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Inline Markdown anywhere (emphasis, code, links, strikethrough, math, table pipes, headings);
# & < > become entities instead. List and setext markers open a block only at the start.
# A `_` between two letters or digits opens nothing (input_type stays as it is).
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*\[\]|~$#]|(?<![^\W_])_|_(?![^\W_]))")
_BLOCK_START = re.compile(r"^(\s*(?:\d+(?=[.)](?:\s|$))|(?=[-+=](?:\s|$))))")
# What GitHub links in plain text: @user, @org/team, #123, GH-123, owner/repo#1, http(s)://, www.
_AUTOLINKS = re.compile(r"(@|#|\bGH-|:(?=//)|\bwww(?=\.))", re.IGNORECASE)


def fold(value) -> str:
    """One line: line breaks as ⏎, tabs as spaces, controls and bidi overrides as U+FFFD."""
    value = _LINE_BREAKS.sub("⏎", str(value)).replace("\t", " ")
    return _INVISIBLE.sub("\ufffd", value)


def cap(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def code(value, limit: int = NAME_LIMIT) -> str:
    """A code span showing value as it is (folded and capped)."""
    value = cap(fold(value), limit)
    if not value:
        return "*(empty)*"
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    # CommonMark strips one space from each end of a span that starts and ends with one; a span
    # starting or ending with a backtick needs that space to be told from the fence.
    pad = " " if value.strip(" ") and (value[0] in "` " or value[-1] in "` ") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def text(value, limit: int = NAME_LIMIT) -> str:
    """Plain text that shows value as it is: no Markdown, no HTML, no links, no mentions. A list
    (strides, a mean) keeps its brackets, which are ours: only its items are escaped."""
    if isinstance(value, (list, tuple)):
        return cap("[" + ", ".join(text(item, limit) for item in value) + "]", limit)
    value = cap(fold(value), limit)
    value = _AUTOLINKS.sub(lambda match: match.group(1) + JOINER, value)
    value = html.escape(value, quote=False)  # & < > as entities: no tag, comment or autolink opens
    value = _MARKDOWN_PUNCTUATION.sub(r"\\\1", value)
    return _BLOCK_START.sub(r"\1\\", value)


def message(value, limit: int = MESSAGE_LIMIT) -> str:
    """One of our messages: parts between backticks as code spans, the rest as text.
    An unpaired backtick stays a literal one."""
    value = cap(fold(value), limit)
    parts = value.split("`")
    if len(parts) % 2 == 0:  # an odd number of backticks: the last one pairs with nothing
        parts[-2:] = [parts[-2] + "`" + parts[-1]]
    out = []
    for index, part in enumerate(parts):
        if index % 2:
            out.append(code(part, limit) if part else text("``"))
        else:
            out.append(text(part, limit))
    return "".join(out)


def html_code(value, limit: int = NAME_LIMIT) -> str:
    """<code>value</code> for raw HTML (a <details>' <summary> line is an HTML block: no Markdown)."""
    return f"<code>{html.escape(cap(fold(value), limit))}</code>"


_TABLE_DELIMITER = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")


def _tables(lines: list[str]) -> list[tuple[int, int, int]]:
    """Each table's data rows as (first, end, columns), in line indexes."""
    tables, index = [], 0
    while index + 1 < len(lines):
        if lines[index].startswith("|") and _TABLE_DELIMITER.match(lines[index + 1]):
            first = end = index + 2
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            tables.append((first, end, lines[index + 1].count("-|")))
            index = end
        else:
            index += 1
    return tables


def _keep_rows(lines: list[str], tables, keep: int) -> list[str]:
    """Every table cut to its first `keep` rows and a "… N more rows" row."""
    out, position = [], 0
    for first, end, columns in tables:
        out += lines[position : first + min(keep, end - first)]
        if end - first > keep:
            out.append(f"| … {end - first - keep} more rows |" + " |" * (columns - 1))
        position = end
    return out + lines[position:]


def fit(markdown: str, limit: int, note: str, measure=len) -> str:
    """markdown within `limit` (as `measure` counts: characters, or bytes), never refused.
    Long tables lose rows first, each keeping its header, its first rows and a "… N more rows"
    row, so the verdict line and the headings stay; only if that is not enough is the end cut,
    at a line, with any <details> left open closed. `note` (a line of ours) says what was cut."""
    if measure(markdown) <= limit:
        return markdown
    note = "\n\n" + note
    budget = limit - measure(note)
    lines = markdown.split("\n")
    tables = _tables(lines)
    low, high = 0, max((end - first for first, end, _ in tables), default=0)
    if measure("\n".join(_keep_rows(lines, tables, low))) <= budget:
        while low < high:  # the most rows per table that fit
            middle = (low + high + 1) // 2
            if measure("\n".join(_keep_rows(lines, tables, middle))) <= budget:
                low = middle
            else:
                high = middle - 1
        return "\n".join(_keep_rows(lines, tables, low)) + note
    lines = _keep_rows(lines, tables, 0)
    kept: list[str] = []
    size, open_details = 0, 0
    for line in lines:
        # Our <details> open and close on lines of their own (a name in a code span may read "<details>").
        opened = open_details + line.startswith("<details>") - (line == "</details>")
        if size + measure(line + "\n") + measure("\n\n</details>" * opened) > budget:
            break
        kept.append(line)
        size += measure(line + "\n")
        open_details = opened
    if not kept:  # one line longer than the whole budget (our lines cap what a model sets)
        kept, open_details = [lines[0][: max(0, budget // 4 - 1)] + "…"], 0
    return "\n".join(kept + ["", "</details>"] * open_details) + note


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A table of cells already made Markdown (markdown_text: a model's strings escaped). `|` is
    escaped here, where a cell ends at it (GFM: `\\|` works inside a code span too), and a line
    break, which would end the row, is folded."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fold(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)
