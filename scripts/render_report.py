"""Render a Markdown report as GitHub shows it (its stylesheet, folded sections folded) and screenshot it.

Usage: python scripts/render_report.py REPORT.md OUT.png
Needs Debian's chromium and fonts-noto-color-emoji, and `npm ci --prefix docs` (GitHub's Markdown CSS); `make report-screenshot` does both.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
CSS = ROOT / "docs" / "node_modules" / "github-markdown-css" / "github-markdown-light.css"


def main():
    markdown_path, png_path = Path(sys.argv[1]), Path(sys.argv[2])
    chromium = shutil.which("chromium") or sys.exit("chromium not found: apt-get install chromium")
    if not CSS.exists():
        sys.exit(f"{CSS} not found: run `npm ci --prefix docs`")
    body = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown_path.read_text())
    html = (
        f"<!doctype html><meta charset='utf-8'><style>{CSS.read_text()}"
        "body{margin:0;background:#fff} .markdown-body{box-sizing:border-box;width:980px;padding:32px}</style>"
        f"<article class='markdown-body'>{body}</article>"
    )
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html)
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={tmp}/profile",
                "--window-size=980,1000",
                f"--screenshot={png_path.resolve()}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"wrote {png_path}")


if __name__ == "__main__":
    main()
