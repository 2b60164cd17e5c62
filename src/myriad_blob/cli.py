"""The command line: `myriad-blob convert ...`, `myriad-blob setup`, `myriad-blob --version`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from . import __version__, toolchain
from .errors import ConversionError, Stage
from .options import DEFAULT_COMPILE_TIMEOUT_S, FRONTENDS, ConversionOptions, default_output, parse_options


def _version_message() -> str:
    lines = [f"myriad-blob {__version__}",
             "toolchain (pinned): " + ", ".join(f"{k}=={v}" for k, v in toolchain.PINNED.items())]
    manifest = toolchain.default_dir() / "toolchain.json"
    if manifest.exists():
        versions = json.loads(manifest.read_text())
        lines.append(f"toolchain (set up in {manifest.parent}): inference engine {versions.get('inference_engine_build')}, "
                     f"Python {versions.get('legacy_python')}, g++ {versions.get('gxx')}")
    else:
        lines.append(f"toolchain: not set up yet in {manifest.parent} (run `myriad-blob setup`)")
    return "\n".join(lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, message=_version_message())
def main() -> None:
    """Convert PyTorch and ONNX models to Myriad X blobs for OAK cameras and the NCS2."""


@main.command()
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path),
              help="Model file: ONNX, TorchScript, torch.export (.pt2), a state dict or checkpoint (with --model-class), "
                   "or a full-model pickle (with --trust-pickle). Told apart by content.")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="SHAPE",
              help="Input shape, e.g. '[1, 3, 240, 320]'; for several inputs 'name=[...]', repeated. "
                   "Required for PyTorch models and ONNX models with dynamic shapes.")
@click.option("--output", type=click.Path(path_type=Path),
              help="Where to write the blob. Default: the input's name with .blob, in the current directory.")
@click.option("--reverse-input-channels/--no-reverse-input-channels", default=False, show_default=True,
              help="Swap RGB<->BGR in the blob (cameras give BGR; PyTorch models usually expect RGB).")
@click.option("--input-type", default="U8", show_default=True,
              help="Blob input precision (compile tool names: U8, FP16, FP32, ...); ONNX keeps the model's own.")
@click.option("--output-type", default="FP16", show_default=True,
              help="Blob output precision; ONNX keeps the model's own.")
@click.option("--mean", "means", multiple=True, metavar="VALUES",
              help="Per-channel mean subtracted in the blob, e.g. 'input=[123.675, 116.28, 103.53]' (before --scale).")
@click.option("--scale", "scales", multiple=True, metavar="VALUES",
              help="Per-channel divisor applied in the blob after --mean, e.g. 'input=[58.4, 57.12, 57.38]'.")
@click.option("--model-key", default=None,
              help="Key of the model in a checkpoint dict.  [default: the first of model, state_dict, "
                   "model_state_dict, ema, net that holds a model or state dict]")
@click.option("--model-dtype", default="float32", show_default=True,
              help="torch dtype to cast the model to before export (the blob is FP16 either way).")
@click.option("--model-class", metavar="MODULE:CLASS",
              help="Class to load a state dict into, e.g. mypackage.models:Detector (imported from the current directory).")
@click.option("--trust-pickle", is_flag=True,
              help="Allow loading a full-model pickle. Loading one runs code from the file: only for files you trust.")
@click.option("--nshaves", type=int, default=6, show_default=True, help="SHAVE cores the blob uses (1-16).")
@click.option("--nslices", type=int, default=None,
              help="CMX slices the blob uses (1-16, at least --nshaves).  [default: same as --nshaves]")
@click.option("--nstreams", type=int, default=1, show_default=True, help="Throughput streams (1-3).")
@click.option("--opset", type=int, default=None,
              help="ONNX opset for the PyTorch export (7-18).  [default: 14, falling back to 16, 13, 12, 11, 17 "
                   "when the exporter fails]")
@click.option("--new-export", is_flag=True, help="Use the torch.export-based ONNX exporter instead of the TorchScript one.")
@click.option("--frontend", type=click.Choice(FRONTENDS, case_sensitive=False), default="auto", show_default=True,
              help="IR front end: ov2022 (OpenVINO 2022.3.1's ONNX reader), mo2021 (Model Optimizer 2021.4), "
                   "or auto: ov2022, falling back to mo2021 when it fails.")
@click.option("--output-names", "output_names", multiple=True, metavar="NAME,...",
              help="Convert only up to these ONNX tensors (comma-separated or repeated), e.g. to cut a detector "
                   "before its decode/NMS.")
@click.option("--compile-timeout", type=float, default=DEFAULT_COMPILE_TIMEOUT_S, show_default=True,
              help="Seconds the Myriad compiler may run before it is stopped (exit 13).")
@click.option("--report", "report_path", type=click.Path(path_type=Path),
              help="Where to write the JSON report (Markdown beside it, .md). Default: <blob>.report.json.")
@click.option("--sample", type=click.Path(path_type=Path),
              help="An image (resized to the input) or .npy array (exact shape) for the numeric check's first input; "
                   "default: seeded random data.")
@click.option("--strict", is_flag=True, help="Fail (exit 14) when the numeric check misses its tolerances, "
                                             "instead of warning.")
@click.option("--max-relative-error", type=float, default=0.02, show_default=True,
              help="Numeric check: largest allowed |IR - original| relative to the output's largest magnitude.")
@click.option("--min-cosine", type=float, default=0.999, show_default=True,
              help="Numeric check: smallest allowed cosine similarity of IR and original outputs.")
@click.option("--nn-archive", is_flag=True,
              help="Also write a depthai NN Archive (<blob name>.tar.xz: config.json and the blob) beside the blob.")
@click.option("--superblob", is_flag=True,
              help="Also write <blob name>.superblob: one file depthai unpacks for any of 1-16 SHAVEs.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Content-addressed cache of converted blobs.  [default: $MYRIAD_BLOB_CACHE_DIR or "
                   "~/.cache/myriad-blob/blobs]")
@click.option("--no-cache", is_flag=True, help="Convert even when the cache holds this exact conversion.")
@click.option("--debug", is_flag=True, help="Show Python tracebacks.")
def convert(input_path: Path, input_shapes, output, reverse_input_channels, input_type, output_type, means, scales,
            model_key, model_dtype, model_class, trust_pickle, nshaves, nslices, nstreams, opset, new_export,
            frontend, output_names, compile_timeout, report_path, sample, strict, max_relative_error, min_cosine, nn_archive, superblob, cache_dir, no_cache,
            debug) -> None:
    """Convert a PyTorch or ONNX model to a Myriad X blob, and write a report beside it."""
    from .pipeline import convert as run_conversion, report_options_error  # torch is imported only when converting
    from .report import show_progress

    if sys.stderr.isatty():
        show_progress(sys.stderr)

    try:
        options = parse_options(
            input=input_path, output=output, report=report_path, input_shapes=input_shapes, means=means,
            scales=scales, reverse_input_channels=reverse_input_channels, input_type=input_type,
            output_type=output_type, model_key=model_key, model_dtype=model_dtype, model_class=model_class,
            trust_pickle=trust_pickle, nshaves=nshaves, nslices=nslices, nstreams=nstreams, opset=opset,
            new_export=new_export, frontend=frontend, output_names=output_names, compile_timeout=compile_timeout,
            sample=sample, strict=strict, max_relative_error=max_relative_error,
            min_cosine=min_cosine, nn_archive=nn_archive, superblob=superblob)
    except ValueError as error:
        options = ConversionOptions(input_path, output or default_output(input_path), report=report_path)
        _exit_with(options, report_options_error(options, ConversionError(Stage.OPTIONS, str(error))))
    try:
        report = run_conversion(options, cache=_cache(cache_dir, no_cache))
    except Exception:
        if debug:
            raise
        click.echo(f"myriad-blob: internal error (a bug; rerun with --debug for the traceback). "
                   f"Report: {options.report_json}", err=True)
        sys.exit(1)
    for warning in report.warnings:
        click.echo(f"myriad-blob: warning: {warning}", err=True)
    if report.error:
        _exit_with(options, report)
    click.echo(f"blob:   {options.output} ({report.blob['size']:,} bytes, sha256 {report.blob['sha256'][:16]}…)")
    if report.nn_archive:
        click.echo(f"nn archive: {report.nn_archive['path']}")
    if report.superblob:
        click.echo(f"superblob: {report.superblob['path']} ({report.superblob['size']:,} bytes, 1-16 SHAVEs)")
    if (report.cache or {}).get("hit"):
        click.echo("        (from the cache: the same model, options and toolchain were converted before)")
    click.echo(f"report: {options.report_json}")
    if options.report_markdown:
        click.echo(f"        {options.report_markdown}")


def _exit_with(options: ConversionOptions, report) -> None:
    """Print one line naming the stage and what to change, and exit with the stage's code."""
    stage, code, message = report.error["stage"], report.error["exit_code"], report.error["message"]
    click.echo(f"myriad-blob: {stage} failed: {message}", err=True)
    if Path(options.report_json).exists():
        click.echo(f"report: {options.report_json}", err=True)
    sys.exit(code)


def _cache(cache_dir: Path | None, no_cache: bool):
    from .cache import BlobCache, default_cache_dir

    return None if no_cache else BlobCache(cache_dir or default_cache_dir())


_manifest_option = click.option("--manifest", type=click.Path(path_type=Path), default=Path("myriad-blob.toml"),
                                show_default=True, help="The manifest of models and variants.")


def _load_variants(manifest: Path, only=()):
    from .batch import select
    from .manifest import ManifestError, load_manifest

    try:
        return select(load_manifest(manifest), only)
    except (ManifestError, ValueError) as error:
        click.echo(f"myriad-blob: manifest failed: {error}", err=True)
        sys.exit(EXIT_MANIFEST)


EXIT_MANIFEST = 16


@main.command("convert-all")
@_manifest_option
@click.option("--output-dir", type=click.Path(path_type=Path), default=Path("blobs"), show_default=True,
              help="Where the blobs (<model>-<variant>.blob), their reports and batch-report.{json,md} go.")
@click.option("--only", multiple=True, metavar="MODEL[/VARIANT]", help="Convert only these (repeatable).")
@click.option("--jobs", type=click.IntRange(1, 64), default=os.cpu_count() or 1, show_default="the number of cores",
              help="Variants converted at once, each with its own warm toolchain process.")
@click.option("--superblob", is_flag=True, help="Also write a SuperBlob (1-16 SHAVEs) for every variant.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Content-addressed cache.  [default: $MYRIAD_BLOB_CACHE_DIR or ~/.cache/myriad-blob/blobs]")
@click.option("--no-cache", is_flag=True, help="Convert every variant even when the cache has it.")
def convert_all_command(manifest, output_dir, only, jobs, superblob, cache_dir, no_cache) -> None:
    """Convert every variant of every model in a manifest (myriad-blob.toml)."""
    from .batch import EXIT_SOME_FAILED, convert_all

    variants = _load_variants(manifest, only)

    def progress(result) -> None:
        report = result.report
        if report.status == "succeeded":
            cached = " (cached)" if (report.cache or {}).get("hit") else ""
            click.echo(f"ok      {result.variant.id}: {report.blob['path']}{cached}")
        else:
            click.echo(f"FAILED  {result.variant.id}: {report.error['stage']}: {report.error['message']}", err=True)

    summary = convert_all(variants, output_dir, cache=_cache(cache_dir, no_cache), jobs=jobs, superblob=superblob,
                          progress=progress)
    click.echo(f"{summary['succeeded']} of {len(variants)} variants converted ({summary['cached']} from the cache) "
               f"in {summary['total_s']:.1f} s; report: {output_dir / 'batch-report.md'}")
    sys.exit(EXIT_SOME_FAILED if summary["failed"] else 0)


@main.command("matrix")
@_manifest_option
def matrix_command(manifest) -> None:
    """Print the manifest's variants as a GitHub Actions matrix (JSON for fromJSON)."""
    from .batch import matrix

    click.echo(matrix(_load_variants(manifest)))


@main.command()
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=None,
              help="Where to set up the toolchain (a new or empty directory, or one an earlier set-up made; "
                   "it is replaced when the pins change). Default: $MYRIAD_BLOB_TOOLCHAIN or "
                   "~/.cache/myriad-blob/toolchain-openvino-2021.4.2.")
def setup(directory: Path | None) -> None:
    """Set up the pinned toolchain: OpenVINO 2021.4.2 (Myriad compiler) and 2022.3.1 (IR front end). Idempotent."""
    sys.exit(toolchain.setup(directory))


if __name__ == "__main__":
    main()
