"""The command line: `myriad-blob convert ...`, `myriad-blob setup`, `myriad-blob --version`."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import click

from . import __version__, toolchain
from .batch import convert_all, matrix, select
from .cache import BlobCache, default_cache_dir
from .cancel import exit_when_cancelled
from .errors import EXIT_INTERNAL, EXIT_MANIFEST, EXIT_SOME_FAILED, ConversionError, Stage
from .files import is_stream
from .manifest import ManifestError, load_manifest
from .options import CLI, OPTIONS, ConversionOptions, Option, default_output, parse_options
from .pipeline import convert as run_conversion
from .pipeline import report_options_error
from .report import show_progress
from .speed import estimate_cli


def _version_message() -> str:
    lines = [
        f"myriad-blob {__version__}",
        "toolchain (pinned): " + ", ".join(f"{k}=={v}" for k, v in toolchain.PINNED.items()),
    ]
    manifest = toolchain.default_dir() / "toolchain.json"
    if manifest.exists():
        versions = json.loads(manifest.read_text())
        lines.append(
            f"toolchain (set up in {manifest.parent}): inference engine {versions.get('inference_engine_build')}, "
            f"Python {versions.get('legacy_python')}, g++ {versions.get('gxx')}"
        )
    else:
        lines.append(f"toolchain: not set up yet in {manifest.parent} (run `myriad-blob setup`)")
    return "\n".join(lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, message=_version_message())
def main() -> None:
    """Convert PyTorch and ONNX models to Myriad X blobs for OAK cameras and the NCS2."""


def _click_option(option: Option, old_name: str | None = None):
    """The click option of one entry of OPTIONS; with old_name, the hidden flag of a name it had
    before a rename (no default, so _cli_options can tell it was given)."""
    name = old_name or option.name
    settings: dict = {"help": option.help}
    if option.kind == "switch":
        decls = [f"--{name}/--no-{name}"]
        settings.update(default=option.default, show_default=True)
    elif option.kind == "flag":
        decls = [f"--{name}"]
        settings.update(is_flag=True)
    else:
        decls = [f"--{name}"]
        settings["type"] = {
            "path": click.Path(path_type=Path),
            "int": int,
            "float": float,
            "text": None,
            "choice": click.Choice(option.choices or (), case_sensitive=False),
        }[option.kind]
        settings.update(default=option.default, show_default=option.default is not None)
    for key in ("multiple", "metavar", "required"):
        if getattr(option, key):
            settings[key] = getattr(option, key)
    if old_name:
        settings.update(default=None, show_default=False, hidden=True, required=False)
        return click.option(*decls, _renamed_key(old_name), **settings)
    return click.option(*decls, _click_key(option), **settings)


def _click_key(option: Option) -> str:
    return option.key or option.name.replace("-", "_")


def _renamed_key(old_name: str) -> str:
    return "renamed__" + old_name.replace("-", "_")


def _cli_options(command, options: tuple[Option, ...] = OPTIONS):
    """The command with a click option for every CLI entry of the table, and a hidden one for each
    name an entry had before a rename: given, it warns and stands for the new flag."""
    table = [option for option in options if option.on(CLI)]

    @functools.wraps(command)
    def with_renamed_flags(**values):
        for option in table:
            for old in option.renamed_from:
                value = values.pop(_renamed_key(old))
                if value is None or value == ():
                    continue
                source = click.get_current_context().get_parameter_source(_click_key(option))
                if source == click.core.ParameterSource.COMMANDLINE:
                    raise click.UsageError(
                        f"--{old} and --{option.name} are one option (renamed): give --{option.name} only"
                    )
                click.echo(f"myriad-blob: warning: {option.deprecation(old)}", err=True)
                values[_click_key(option)] = value
        return command(**values)

    for option in reversed(table):
        for old in option.renamed_from:
            with_renamed_flags = _click_option(option, old)(with_renamed_flags)
        with_renamed_flags = _click_option(option)(with_renamed_flags)
    return with_renamed_flags


@main.command()
@_cli_options
def convert(cache_dir: Path | None, no_cache: bool, debug: bool, **values) -> None:
    """Convert a PyTorch or ONNX model to a Myriad X blob, and write a report beside it."""
    with exit_when_cancelled():
        _convert(cache_dir, no_cache, debug, values)


def _convert(cache_dir: Path | None, no_cache: bool, debug: bool, values: dict) -> None:
    if sys.stderr.isatty():
        show_progress(sys.stderr)

    try:
        options = parse_options(**values)
    except ValueError as error:
        input_path, output = values["input"], values["output"]
        options = ConversionOptions(input_path, output or default_output(input_path), report=values["report"])
        _exit_with(options, report_options_error(options, ConversionError(Stage.OPTIONS, str(error))))
    try:
        report = run_conversion(options, cache=_cache(cache_dir, no_cache))
    except Exception:
        if debug:
            raise
        click.echo(
            f"myriad-blob: internal error (a bug; rerun with --debug for the traceback). Report: {options.report_json}",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)
    for warning in report.warnings:
        click.echo(f"myriad-blob: warning: {warning}", err=True)
    if report.error:
        _exit_with(options, report)
    # The summary goes to stderr when the report itself goes to standard output (| jq must work).
    to_stderr = is_stream(options.report_json)
    lines = [f"blob:   {options.output} ({report.blob['size']:,} bytes, sha256 {report.blob['sha256'][:16]}…)"]
    if report.nn_archive:
        lines.append(f"nn archive: {report.nn_archive['path']}")
    if report.superblob:
        lines.append(f"superblob: {report.superblob['path']} ({report.superblob['size']:,} bytes, 1-16 SHAVEs)")
    if (report.cache or {}).get("hit"):
        lines.append("        (from the cache: the same model, options and toolchain were converted before)")
    lines.append(f"report: {options.report_json}")
    if options.report_markdown:
        lines.append(f"        {options.report_markdown}")
    for line in lines:
        click.echo(line, err=to_stderr)


def _exit_with(options: ConversionOptions, report) -> None:
    """Print one line naming the stage and what to change, and exit with the stage's code."""
    stage, code, message = report.error["stage"], report.error["exit_code"], report.error["message"]
    click.echo(f"myriad-blob: {stage} failed: {message}", err=True)
    if report.error["stage"] != "output" and Path(options.report_json).exists():
        click.echo(f"report: {options.report_json}", err=True)
    sys.exit(code)


def _cache(cache_dir: Path | None, no_cache: bool):
    return None if no_cache else BlobCache(cache_dir or default_cache_dir())


_manifest_option = click.option(
    "--manifest",
    type=click.Path(path_type=Path),
    default=Path("myriad-blob.toml"),
    show_default=True,
    help="The manifest of models and variants.",
)


def _load_variants(manifest: Path, only=()):
    try:
        return select(load_manifest(manifest), only)
    except (ManifestError, ValueError) as error:
        click.echo(f"myriad-blob: manifest failed: {error}", err=True)
        sys.exit(EXIT_MANIFEST)


@main.command("convert-all")
@_manifest_option
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path),
    default=Path("blobs"),
    show_default=True,
    help="Where the blobs (<model>-<variant>.blob), their reports and batch-report.{json,md} go.",
)
@click.option("--only", multiple=True, metavar="MODEL[/VARIANT]", help="Convert only these (repeatable).")
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=os.cpu_count() or 1,
    show_default="the number of cores",
    help="Variants converted at once, each with its own warm toolchain process.",
)
@click.option("--superblob", is_flag=True, help="Also write a SuperBlob (1-16 SHAVEs) for every variant.")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Content-addressed cache.  [default: $MYRIAD_BLOB_CACHE_DIR or ~/.cache/myriad-blob/blobs]",
)
@click.option("--no-cache", is_flag=True, help="Convert every variant even when the cache has it.")
def convert_all_command(manifest, output_dir, only, jobs, superblob, cache_dir, no_cache) -> None:
    """Convert every variant of every model in a manifest (myriad-blob.toml)."""
    variants = _load_variants(manifest, only)

    def progress(result) -> None:
        report = result.report
        if report.status == "succeeded":
            cached = " (cached)" if (report.cache or {}).get("hit") else ""
            click.echo(f"ok      {result.variant.id}: {report.blob['path']}{cached}")
        else:
            click.echo(f"FAILED  {result.variant.id}: {report.error['stage']}: {report.error['message']}", err=True)

    with exit_when_cancelled():
        summary = convert_all(
            variants, output_dir, cache=_cache(cache_dir, no_cache), jobs=jobs, superblob=superblob, progress=progress
        )
    click.echo(
        f"{summary['succeeded']} of {len(variants)} variants converted ({summary['cached']} from the cache) "
        f"in {summary['total_s']:.1f} s; report: {output_dir / 'batch-report.md'}"
    )
    sys.exit(EXIT_SOME_FAILED if summary["failed"] else 0)


@main.command("matrix")
@_manifest_option
def matrix_command(manifest) -> None:
    """Print the manifest's variants as a GitHub Actions matrix (JSON for fromJSON)."""
    click.echo(matrix(_load_variants(manifest)))


@main.command()
@click.argument("blob", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the estimate as the report's JSON speed section.")
@click.option(
    "--target-fps",
    type=click.FloatRange(0.01, 10000),
    metavar="FPS",
    help="Exit 14 when the estimate falls short of FPS, naming the SHAVE count or input size that would reach it.",
)
def estimate(blob: Path, as_json: bool, target_fps: float | None) -> None:
    """Estimate a blob's speed on an RVC2 camera (FPS, latency, 1-16 SHAVEs, where the time goes)
    from the blob alone: any blob the 2021.4 Myriad plugin wrote, by myriad-blob or not."""
    sys.exit(estimate_cli(blob, as_json, target_fps))


@main.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to set up the toolchain (a new or empty directory, or one an earlier set-up made; "
    "it is replaced when the pins change). Default: $MYRIAD_BLOB_TOOLCHAIN or "
    "~/.cache/myriad-blob/toolchain-openvino-2021.4.2.",
)
def setup(directory: Path | None) -> None:
    """Set up the pinned toolchain: OpenVINO 2021.4.2 (Myriad compiler) and 2022.3.1 (IR front end). Idempotent."""
    sys.exit(toolchain.setup(directory))


if __name__ == "__main__":
    main()
