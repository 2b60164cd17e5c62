"""The corpus (tests/corpus.py) as files and jobs, converted anywhere: here, or inside the image.

    python tests/corpus_blobs.py save DIR        every corpus model into DIR, and DIR/jobs.json
                                                (plus examples/tiny_cnn.pt through --frontend mo2021)
    python corpus_blobs.py convert DIR OUT       convert each job of DIR/jobs.json into OUT and
                                                write OUT/digests.json: name -> status, blob SHA-256,
                                                front end, seconds

`convert` needs only the standard library and `python -m myriad_blob.cli` (so the image, which has
no tests/, runs it from a mount). tests/test_image.py compares the image's digests with the host's.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path


def save(directory: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from corpus import CORPUS, shape_flag

    directory.mkdir(parents=True, exist_ok=True)
    jobs = []
    for model in CORPUS:
        path = model.save(directory)
        jobs.append(
            {"name": model.name, "file": path.name, "flags": ["--input-shape", shape_flag(model), *model.flags]}
        )
    # The other IR front end (Model Optimizer 2021.4, the legacy venv's mo and onnx), which the
    # corpus's models never reach with the default `auto`.
    example = Path(__file__).resolve().parents[1] / "examples" / "tiny_cnn.pt"
    (directory / example.name).write_bytes(example.read_bytes())
    jobs.append(
        {
            "name": "tiny_cnn_mo2021",
            "file": example.name,
            "flags": ["--input-shape", "[1, 3, 240, 320]", "--frontend", "mo2021"],
        }
    )
    (directory / "jobs.json").write_text(json.dumps(jobs, indent=1))


def convert(directory: Path, out: Path, python: str = sys.executable) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    digests = {}
    for job in json.loads((directory / "jobs.json").read_text()):
        blob = out / f"{job['name']}.blob"
        started = time.monotonic()
        result = subprocess.run(
            [
                python,
                "-m",
                "myriad_blob.cli",
                "convert",
                "--no-cache",
                "--input",
                str(directory / job["file"]),
                "--output",
                str(blob),
                *job["flags"],
            ],
            capture_output=True,
            text=True,
        )
        seconds = round(time.monotonic() - started, 1)
        report_path = blob.with_name(blob.name + ".report.json")
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
        digests[job["name"]] = {
            "exit_code": result.returncode,
            "status": report.get("status"),
            "sha256": hashlib.sha256(blob.read_bytes()).hexdigest() if blob.exists() else None,
            "frontend": (report.get("ir") or {}).get("frontend"),
            "numeric_passed": (report.get("numeric") or {}).get("passed"),
            "seconds": seconds,
            "stderr": result.stderr[-2000:] if result.returncode else "",
        }
        print(job["name"], digests[job["name"]]["status"], seconds, flush=True)
    (out / "digests.json").write_text(json.dumps(digests, indent=1))
    return digests


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "save":
        save(Path(args[0]))
    elif command == "convert":
        convert(Path(args[0]), Path(args[1]))
    else:
        sys.exit(__doc__)
