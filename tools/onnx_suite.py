"""The ONNX conformance sweep: the test models that ship inside the onnx wheel, converted as users convert.

Every model of onnx/backend/test/data/{pytorch-converted,pytorch-operator,simple,light} (and, with
--suite node, ONNX's node tests, built from the wheel's onnx.backend.test.case.node) is converted by
the real pipeline, exactly as `myriad-blob convert --input model.onnx --sample NAME=input.npy ...`
would (each input of the suite's own test data as --sample), in a child process with a timeout.
When it converts, the IR the blob was compiled from runs on OpenVINO's CPU plugin (the numeric
check's run) on the suite's inputs, and its outputs are compared with the suite's expected outputs,
not with our own ONNX Runtime reference: a reference that is wrong the same way as the IR cannot
hide a wrong conversion here. Each model's outcome is one of
  converted        exit 0, the IR's outputs match the suite's
  numbers differ   exit 0, the IR's outputs differ from the suite's (the row says whether the
                   report's numeric check passed: "report passed" is the one that must never be)
  refused          exit 2-16 (the documented codes), with the one-line reason
  exit 1           an internal error (a bug)
  timeout          no answer within --timeout seconds
`make onnx-suite` prints the table and the counts; --readme writes the counts into the README.
tests/test_onnx_suite.py keeps a representative part.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from readme_section import replace_section

SUITES = ("pytorch-converted", "pytorch-operator", "simple", "light")
TIMEOUT_S = 240.0  # per model; the slowest suite model converts in well under a minute
OUTCOMES = ("converted", "numbers differ", "refused", "exit 1", "timeout")


def data_dir() -> Path:
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data"


@dataclasses.dataclass
class SuiteModel:
    name: str  # suite/test_name
    model: Path
    inputs: dict  # ONNX input name -> array, in the graph's order
    expected: dict  # ONNX output name -> array


def _tensor(path: Path) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    tensor = onnx.TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(tensor)


def _graph_inputs(model) -> list:
    initializers = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def suite_models(suites=SUITES, only=(), workdir: Path | None = None) -> list[SuiteModel]:
    """The suites' models with their first test data set, in name order; only: names containing one of these."""
    import onnx

    found = []
    for suite in suites:
        if suite == "node":
            found += _node_models(only, workdir)
            continue
        for path in sorted((data_dir() / suite).glob("*.onnx" if suite == "light" else "*/model.onnx")):
            name = f"{suite}/{path.stem if suite == 'light' else path.parent.name}"
            if only and not any(o in name for o in only):
                continue
            model = onnx.load(str(path), load_external_data=False)
            if suite == "light":  # inputs as ONNX's runner makes them (generate_dummy_data), outputs shipped
                inputs = {i.name: _dummy_input(i) for i in _graph_inputs(model)}
                outputs = [path.with_name(f"{path.stem}_output_{n}.pb") for n in range(len(model.graph.output))]
            else:
                data = path.parent / "test_data_set_0"
                inputs = {i.name: _tensor(data / f"input_{n}.pb") for n, i in enumerate(_graph_inputs(model))}
                outputs = [data / f"output_{n}.pb" for n in range(len(model.graph.output))]
            expected = {o.name: _tensor(p) for o, p in zip(model.graph.output, outputs)}
            found.append(SuiteModel(name, path, inputs, expected))
    return found


def _dummy_input(value_info) -> np.ndarray:
    shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in value_info.type.tensor_type.shape.dim)
    count = int(np.prod(shape))
    return (np.arange(count).reshape(shape) / count).astype(np.float32)


def _node_models(only, workdir: Path | None) -> list[SuiteModel]:
    """ONNX's node tests (one op each), from the wheel's test-case generators, written to workdir."""
    import warnings

    import onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases

        cases = collect_testcases(None)
    found = []
    for case in sorted(cases, key=lambda c: c.name):
        name = f"node/{case.name}"
        if (only and not any(o in name for o in only)) or not case.data_sets:
            continue
        path = Path(workdir or tempfile.mkdtemp(prefix="onnx-suite-")) / "node" / case.name / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(case.model, str(path))
        inputs, outputs = case.data_sets[0]
        graph_inputs, graph_outputs = _graph_inputs(case.model), case.model.graph.output
        if len(inputs) != len(graph_inputs) or not all(isinstance(v, np.ndarray) for v in (*inputs, *outputs)):
            continue  # optional inputs left out, sequences, maps: not tensors a blob takes
        found.append(
            SuiteModel(
                name,
                path,
                {i.name: v for i, v in zip(graph_inputs, inputs)},
                {o.name: v for o, v in zip(graph_outputs, outputs)},
            )
        )
    return found


def _convert_in_child(spec: dict) -> dict:
    """One conversion by the real pipeline (what `myriad-blob convert` runs), then the IR on the CPU
    plugin on the suite's inputs. Runs in the child process the sweep starts per model."""
    import warnings

    warnings.filterwarnings("ignore")
    from myriad_blob.artifacts import IRModel
    from myriad_blob.numeric import run_ir
    from myriad_blob.options import parse_options
    from myriad_blob.pipeline import Session, convert
    from myriad_blob.toolchain import locate

    work = Path(spec["work"])
    options = parse_options(input=Path(spec["model"]), output=work / "model.blob", sample=spec["samples"])
    session = Session(work / "session")
    try:
        report = convert(options, None, session).to_dict()
    except Exception as error:  # the CLI's exit 1: "internal error (a bug)"
        return {"exit_code": 1, "message": f"internal error: {error!r}"}
    if report["status"] != "succeeded":
        return {
            "exit_code": report["error"]["exit_code"],
            "message": f"{report['error']['stage']}: {report['error']['message']}",
        }
    # The IR the blob was compiled from (the one the report names), as the session holds it.
    frontend = report["ir"]["frontend"]
    ir = next(v for v in session._memo.values() if isinstance(v, IRModel) and v.frontend == frontend)
    # As the numeric check feeds them (numeric.load_sample): float32, whatever the suite's type.
    inputs = {name: np.load(path).astype(np.float32) for name, path in spec["inputs"].items()}
    actual = run_ir(ir, inputs, locate(None))
    outputs_path = work / "ir_outputs.npz"
    np.savez(outputs_path, **actual)
    numeric = report["numeric"] or {}
    return {
        "exit_code": 0,
        "outputs": str(outputs_path),
        "report_passed": bool(numeric.get("outputs_passed")),
        "warnings": report["warnings"],
        "rules": [s["name"] for s in report["ir"]["preparation"] if s["kept"] and s["name"] != "graph edits"]
        + [r["rule"] for r in report["ir"]["rewrites"]],
    }


def run_model(model: SuiteModel, workdir: Path, timeout: float = TIMEOUT_S) -> dict:
    """Convert one suite model in a child process; its row: name, outcome, detail, seconds."""
    from myriad_blob.numeric import Tolerances, compare

    work = workdir / model.name.replace("/", "__")
    work.mkdir(parents=True, exist_ok=True)
    samples, inputs = [], {}
    for n, (name, value) in enumerate(model.inputs.items()):
        path = work / f"input_{n}.npy"
        np.save(path, value)
        samples.append(f"{name}={path}")
        inputs[name] = str(path)
    spec = {"model": str(model.model), "work": str(work), "samples": samples, "inputs": inputs}
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group: a timeout ends the toolchain's processes too
    )
    try:
        stdout, _ = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        return _row(model, "timeout", f"no answer in {timeout:g} s", started)
    lines = stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        return _row(model, "exit 1", f"the child process died (exit {child.returncode})", started)
    code = result["exit_code"]
    if code == 1:
        return _row(model, "exit 1", result["message"], started)
    if code != 0:
        return _row(model, "refused", f"exit {code}, {result['message']}", started)
    with np.load(result["outputs"]) as outputs:
        misses = []
        for name, expected in model.expected.items():
            if name not in outputs.files:
                misses.append(f"{name}: missing from the IR's outputs")
                continue
            integer = not np.issubdtype(expected.dtype, np.floating)
            actual = outputs[name]
            if not integer and expected.size == actual.size:
                # The suite's own NaN (sqrt of a negative input): the same NaN is right, so compare the rest.
                nan = np.isnan(expected.astype(np.float64)).ravel()
                if nan.any() and np.array_equal(nan, np.isnan(actual).ravel()):
                    expected, actual = expected.ravel()[~nan], actual.ravel()[~nan]
            with np.errstate(all="ignore"):
                check = compare(name, expected.astype(np.float64), actual, Tolerances(), integer=integer)
            if not check.passed and not check.note.startswith("too small"):
                misses.append(f"{name}: cosine {check.cosine:.4f}, max relative error {check.max_relative_error:.2e}")
                misses[-1] += f" ({check.note})" if check.note else ""
            elif not check.passed and check.max_abs_error > 1e-3:
                misses.append(f"{name}: max abs error {check.max_abs_error:.2e} on values below 1e-3")
    rules = ", ".join(result["rules"])
    if misses:
        verdict = "report passed" if result["report_passed"] else "report warned"
        return _row(model, "numbers differ", f"{verdict}; " + "; ".join(misses), started)
    note = "" if result["report_passed"] else "numbers match the suite, though the report's check warned; "
    return _row(model, "converted", note + (f"rules: {rules}" if rules else "native"), started)


def _row(model: SuiteModel, outcome: str, detail: str, started: float) -> dict:
    return {
        "name": model.name,
        "outcome": outcome,
        "detail": " ".join(detail.split()),
        "seconds": round(time.perf_counter() - started, 1),
    }


SECTION = "onnx-suite"  # the README's section (readme_section.py)


def counts(rows: list[dict]) -> dict:
    return {outcome: sum(r["outcome"] == outcome for r in rows) for outcome in OUTCOMES}


def summary(rows: list[dict], suites) -> str:
    tally = counts(rows)
    return (
        f"{len(rows)} models ({', '.join(suites)}): "
        + ", ".join(f"{n} {outcome}" for outcome, n in tally.items())
        + f"; {sum(r['outcome'] == 'numbers differ' and r['detail'].startswith('report passed') for r in rows)}"
        " with numbers that differ while the report's check passed"
    )


def write_readme(readme: Path, rows: list[dict], suites) -> None:
    replace_section(readme, SECTION, f"{summary(rows, suites)}.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="append", choices=(*SUITES, "node"), help="default: the four data suites")
    parser.add_argument("--only", action="append", default=[], help="models whose name contains this (repeatable)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per model")
    parser.add_argument("--json", type=Path, help="write the rows as JSON")
    parser.add_argument("--readme", type=Path, help="write the counts into this README, between its markers")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_convert_in_child(json.loads(args.child))))
        return 0
    suites = tuple(args.suite or SUITES)
    rows = []
    with tempfile.TemporaryDirectory(prefix="myriad-blob-onnx-suite-") as tmp:
        for model in suite_models(suites, args.only, Path(tmp)):
            rows.append(run_model(model, Path(tmp), args.timeout))
            row = rows[-1]
            print(f"{row['name']:<60} {row['outcome']:<14} {row['seconds']:>6.1f}s  {row['detail'][:200]}", flush=True)
    print("\n" + summary(rows, suites))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if args.readme:
        write_readme(args.readme, rows, suites)
    return 0


if __name__ == "__main__":
    sys.exit(main())
