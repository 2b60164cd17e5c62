"""`make corpus-table`: convert every corpus model (tests/corpus.py) as a user would and write the
README's "What converts" table from the reports, between its markers. Nothing in it is typed."""

import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from readme_section import replace_section  # noqa: E402 (tools/, this script's folder)

from corpus import CORPUS, shape_flag  # noqa: E402

SECTION = "what-converts"  # the README's section (readme_section.py)


def row(model, report: dict) -> list:
    if report["status"] != "succeeded":
        error = report["error"]
        return [model.name, model.note, "—", "—", f"❌ {error['stage']}: {error['message'][:80]}", "—"]
    numeric = report["numeric"]["outputs"]
    worst = max(o["max_relative_error"] for o in numeric)
    cosine = min(o["cosine"] for o in numeric)
    rewrites = ", ".join(f"{r['rule'].split(' ->')[0]} ×{r['layers']}" for r in report["ir"]["rewrites"]) or "—"
    prepared = [
        s["name"].split(" (")[0] for s in report["ir"]["preparation"] if s["kept"] and s["name"] != "graph edits"
    ]
    frontend = report["ir"]["frontend"] + (f" ({', '.join(prepared)})" if prepared else "")
    given = "ONNX" if model.kind == "onnx" else "TorchScript"
    ok = "✅" if report["numeric"]["passed"] else "⚠️"
    return [
        f"{model.name} ({given}, {shape_flag(model)})",
        model.note or "",
        frontend,
        rewrites,
        f"{ok} rel {worst:.1e}, cos {cosine:.6f}",
        f"{report['total_duration_s']:.1f} s",
    ]


def main() -> None:
    warnings.filterwarnings("ignore")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for model in CORPUS:
            path = model.save(tmp)
            blob = tmp / f"{model.name}.blob"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "myriad_blob.cli",
                    "convert",
                    "--no-cache",
                    "--input",
                    str(path),
                    "--input-shape",
                    shape_flag(model),
                    "--output",
                    str(blob),
                    *model.flags,
                ],
                capture_output=True,
                text=True,
            )
            report = json.loads(blob.with_name(blob.name + ".report.json").read_text())
            rows.append(row(model, report))
            print(" | ".join(rows[-1]), flush=True)
    headers = [
        "model (as given)",
        "what it exercises",
        "front end (preparation)",
        "rewrites for 2021.4",
        "numeric check",
        "time",
    ]
    table = "\n".join(
        ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)] + ["| " + " | ".join(r) + " |" for r in rows]
    )
    readme = ROOT / "README.md"
    replace_section(readme, SECTION, table)
    print(f"wrote the table into {readme}")


if __name__ == "__main__":
    main()
