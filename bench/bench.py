"""`make bench`: time each stage of real conversions, and the compile with and without the fast clock.

Prints numbers; asserts nothing about speed.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "examples"), str(ROOT / "bench"), str(ROOT / "tests")]
from networks import MobileNetV2  # noqa: E402
from tiny_cnn import TinyCNN  # noqa: E402

import corpus  # noqa: E402
from myriad_blob import toolchain as toolchain_module  # noqa: E402

CASES = [("small CNN (TinyCNN)", TinyCNN, [1, 3, 240, 320]), ("MobileNetV2", MobileNetV2, [1, 3, 224, 224])]
STAGES = ("load", "export", "ir", "compile", "verify")


def convert(model_path, shape, output, *flags, check=True):
    start = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "myriad_blob.cli",
            "convert",
            "--no-cache",
            "--input",
            str(model_path),
            "--input-shape",
            str(shape),
            "--output",
            str(output),
            *flags,
        ],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if result.returncode != 0 and check:
        sys.exit(f"conversion failed: {result.stderr}")
    report = json.loads(output.with_name(output.name + ".report.json").read_text())
    return wall, {s["name"]: s["duration_s"] or 0.0 for s in report["stages"]}, report


def _numeric(numeric: dict) -> str:
    worst = max(o["max_relative_error"] for o in numeric["outputs"])
    cosine = min(o["cosine"] for o in numeric["outputs"])
    return f"{'pass' if numeric['passed'] else 'MISS'} (rel {worst:.1e}, cos {cosine:.6f})"


def time_compile(toolchain, xml, blob, fast_clock):
    start = time.perf_counter()
    result = toolchain.run(
        [
            str(toolchain.compile_helper),
            "compile",
            str(xml),
            str(blob),
            "-ip",
            "U8",
            "-op",
            "FP16",
            "MYRIAD_NUMBER_OF_SHAVES=6",
            "MYRIAD_NUMBER_OF_CMX_SLICES=6",
        ],
        fast_clock=fast_clock,
    )
    assert result.returncode == 0, result.stderr
    return time.perf_counter() - start, blob.read_bytes()


BATCH_SIZES = (224, 192, 160, 128)
BATCH_SHAVES = (4, 6)


def batch_case(tmp: Path) -> None:
    """8 variants of MobileNetV2 (4 input sizes x 2 SHAVE counts): 8 separate `convert` runs
    against one `convert-all`, then the same `convert-all` again, all from the cache."""
    torch.manual_seed(0)
    model_path = tmp / "mobilenet.pt"
    torch.jit.save(torch.jit.trace(MobileNetV2().eval(), torch.zeros(1, 3, 224, 224)), str(model_path))
    variants = [(size, shaves) for size in BATCH_SIZES for shaves in BATCH_SHAVES]
    manifest = ["[[models]]", 'name = "mobilenet"', f'model = "{model_path}"']
    for size, shaves in variants:
        manifest += [
            "[[models.variants]]",
            f'name = "{size}-{shaves}"',
            f'input-shape = "[1, 3, {size}, {size}]"',
            f"nshaves = {shaves}",
        ]
    (tmp / "myriad-blob.toml").write_text("\n".join(manifest) + "\n")
    cli = [sys.executable, "-m", "myriad_blob.cli"]
    env = dict(os.environ, MYRIAD_BLOB_CACHE_DIR=str(tmp / "cache"))

    start = time.perf_counter()
    for size, shaves in variants:
        subprocess.run(
            [
                *cli,
                "convert",
                "--no-cache",
                "--input",
                str(model_path),
                "--input-shape",
                f"[1, 3, {size}, {size}]",
                "--nshaves",
                str(shaves),
                "--output",
                str(tmp / "single.blob"),
            ],
            check=True,
            capture_output=True,
            env=env,
        )
    separate = time.perf_counter() - start

    timings = []
    for _ in range(2):  # the first run converts (and fills the cache), the second is all hits
        start = time.perf_counter()
        subprocess.run(
            [*cli, "convert-all", "--manifest", str(tmp / "myriad-blob.toml"), "--output-dir", str(tmp / "blobs")],
            check=True,
            capture_output=True,
            env=env,
        )
        timings.append(time.perf_counter() - start)
    summary = json.loads((tmp / "blobs" / "batch-report.json").read_text())
    print(
        f"\nbatch: {len(variants)} MobileNetV2 variants ({len(BATCH_SIZES)} input sizes x SHAVEs {BATCH_SHAVES}), "
        f"{os.cpu_count()} cores"
    )
    print(f"  8 separate convert runs   {separate:7.2f} s")
    print(f"  convert-all               {timings[0]:7.2f} s  ({timings[0] / separate:.0%} of separate runs)")
    print(f"  convert-all, all cached   {timings[1]:7.2f} s  ({summary['cached']} of {len(variants)} from the cache)")


FRONTEND_CASES = ("small CNN (TinyCNN)", "ResNet-18", "MobileNetV3-large (opset 13)", "YOLOv8-style (ultralytics ONNX)")


def frontend_case_files(tmp: Path) -> list:
    """(name, model file, shape, extra flags): the small CNN as ONNX, three corpus models as users bring them."""
    torch.manual_seed(0)
    small = tmp / "tiny_cnn.onnx"
    torch.onnx.export(
        TinyCNN().eval(),
        (torch.zeros(1, 3, 240, 320),),
        str(small),
        opset_version=14,
        dynamo=False,
        input_names=["input"],
        output_names=["output"],
    )
    cases = [(FRONTEND_CASES[0], small, [1, 3, 240, 320], [])]
    for name, key in zip(FRONTEND_CASES[1:], ("resnet18", "mobilenet_v3_large", "yolov8_style")):
        model = corpus.BY_NAME[key]
        # MobileNetV3 at opset 13 for both: at 14 torch writes HardSwish, which Model Optimizer cannot read.
        opset = ["--opset", "13"] if key == "mobilenet_v3_large" else []
        cases.append((name, model.save(tmp), list(model.shape), list(model.flags) + opset))
    return cases


def frontends_side_by_side(tmp: Path) -> None:
    print("\nIR front ends side by side (seconds per stage; one cold `convert --no-cache` each)")
    print(f"{'network':32} {'front end':9} " + " ".join(f"{s:>8}" for s in STAGES) + f" {'wall':>8}  IR speed-up")
    for name, path, shape, flags in frontend_case_files(tmp):
        ir_times = {}
        for frontend in ("ov2022", "mo2021"):
            output = tmp / f"{path.stem}-{frontend}.blob"
            wall, stages, report = convert(path, shape, output, "--frontend", frontend, *flags, check=False)
            if report["status"] != "succeeded":
                stage, error = report["error"]["stage"], report["error"]["message"]
                ir_done = stage not in ("load", "export", "ir")
                ir_times[frontend] = stages["ir"] if ir_done else None
                made = f"IR in {stages['ir']:.2f} s" if ir_done else f"{stages['ir']:.2f} s in the IR stage"
                speedup = f" ({stages['ir'] / ir_times['ov2022']:.1f}x)" if ir_done and ir_times.get("ov2022") else ""
                print(f"{name:32} {frontend:9} {made}{speedup}, then fails at {stage}: {error[:80]}")
                continue
            ir_times[frontend] = stages["ir"]
            speedup = ""
            if frontend == "mo2021" and ir_times["ov2022"]:
                speedup = f"{ir_times['mo2021'] / ir_times['ov2022']:.1f}x"
            print(
                f"{name:32} {frontend:9} " + " ".join(f"{stages[s]:8.2f}" for s in STAGES) + f" {wall:8.2f}  {speedup}"
            )


def cold_against_hand_chain(tmp: Path, toolchain) -> None:
    """One cold conversion of a small ONNX CNN (new process, no cache) against the seeds' manual chain:
    Model Optimizer 2021.4, then compiling with the plugin's 5 s device search (no fast clock)."""
    onnx_path = tmp / "tiny_cnn.onnx"
    start = time.perf_counter()
    subprocess.run(
        [
            str(toolchain.python),
            str(toolchain.model_optimizer),
            "--input_model",
            str(onnx_path),
            "--output_dir",
            str(tmp / "hand"),
            "--data_type",
            "FP16",
            "--input_shape",
            "[1,3,240,320]",
        ],
        capture_output=True,
        check=True,
    )
    mo = time.perf_counter() - start
    compile_s, _ = time_compile(toolchain, tmp / "hand" / "tiny_cnn.xml", tmp / "hand.blob", fast_clock=False)
    hand = mo + compile_s
    wall, _, _ = convert(onnx_path, [1, 3, 240, 320], tmp / "cold.blob")
    print("\ncold conversion of a small ONNX CNN (TinyCNN, 1x3x240x320)")
    print(
        f"  hand chain: Model Optimizer 2021.4 {mo:.2f} s + compile with the device search {compile_s:.2f} s = {hand:.2f} s"
    )
    print(
        f"  myriad-blob convert --no-cache (new process, numeric check included): {wall:.2f} s "
        f"= {wall / hand:.2f}x the hand chain"
    )


def main():
    warnings.filterwarnings("ignore")  # the exporter's deprecation notices would bury the table
    toolchain = toolchain_module.locate()
    print(f"machine: {os.cpu_count()} cores; toolchain {toolchain.root}")
    print(
        f"{'network':22} {'params':>7} "
        + " ".join(f"{s:>8}" for s in STAGES)
        + f" {'total':>8} {'wall':>8}  numeric check"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, cls, shape in CASES:
            torch.manual_seed(0)
            model = cls().eval()
            path = tmp / f"{cls.__name__}.pt"
            torch.jit.save(torch.jit.trace(model, torch.zeros(shape)), str(path))
            wall, stages, report = convert(path, shape, tmp / f"{cls.__name__}.blob")
            params = sum(p.numel() for p in model.parameters()) / 1e6
            print(
                f"{name:22} {params:6.2f}M "
                + " ".join(f"{stages[s]:8.2f}" for s in STAGES)
                + f" {report['total_duration_s']:8.2f} {wall:8.2f}  {_numeric(report['numeric'])}"
            )
            rows.append((name, cls.__name__, report))

        frontends_side_by_side(tmp)
        cold_against_hand_chain(tmp, toolchain)

        print("\ncompile step alone (helper process: read IR, LoadNetwork for MYRIAD, export blob)")
        print(f"{'network':22} {'real clock':>11} {'fast clock':>11}  blob identical")
        for name, stem, report in rows:
            # An IR of the same network to compile (from Model Optimizer here: the compile is what is timed).
            shape = report["options"]["input_shapes"][0]["shape"]
            ir_dir, onnx_path = tmp / f"{stem}-ir", tmp / f"{stem}.onnx"
            torch.onnx.export(
                torch.jit.load(str(tmp / f"{stem}.pt")),
                (torch.zeros(shape),),
                str(onnx_path),
                opset_version=12,
                dynamo=False,
            )
            subprocess.run(
                [
                    str(toolchain.python),
                    str(toolchain.model_optimizer),
                    "--input_model",
                    str(onnx_path),
                    "--output_dir",
                    str(ir_dir),
                    "--data_type",
                    "FP16",
                ],
                capture_output=True,
                check=True,
            )
            xml = ir_dir / f"{stem}.xml"
            real, real_blob = time_compile(toolchain, xml, tmp / "real.blob", fast_clock=False)
            fast, fast_blob = time_compile(toolchain, xml, tmp / "fast.blob", fast_clock=True)
            print(f"{name:22} {real:10.2f}s {fast:10.2f}s  {'yes' if real_blob == fast_blob else 'NO'}")
        batch_case(tmp)
    if toolchain.faketime is None:
        print("\nlibfaketime is not installed: 'fast clock' equals 'real clock' (apt-get install libfaketime)")


if __name__ == "__main__":
    main()
