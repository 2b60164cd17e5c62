"""Write docs/report.schema.json, the JSON Schema of the JSON report, from its types
(src/myriad_blob/report_types.py) with pydantic. `--check` exits 1 when the file differs.
tests/test_report_schema.py checks the file and validates the reports the tests write against it."""

import json
import sys
from pathlib import Path

from pydantic import TypeAdapter

from myriad_blob.report_types import SCHEMA_ID, Report

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "docs" / "report.schema.json"


def generate() -> str:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **TypeAdapter(Report).json_schema(),
        "title": "myriad-blob conversion report",
    }
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def main(argv: list[str]) -> int:
    text = generate()
    if "--check" in argv:
        if SCHEMA_FILE.read_text() != text:
            print(f"{SCHEMA_FILE} differs from the report's types: run scripts/report_schema.py", file=sys.stderr)
            return 1
        return 0
    SCHEMA_FILE.write_text(text)
    print(f"wrote {SCHEMA_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
