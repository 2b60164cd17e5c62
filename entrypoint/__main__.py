"""`python -m entrypoint`: what the container runs.

Exit status: the converter's own (0, 2, 3, 10–15; see the README), 2 for an invalid input,
or 20 when the conversion succeeded but publishing failed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import traceback
from pathlib import Path

import github_action_utils as gha

from myriad_blob.errors import EXIT_INTERNAL, EXIT_PUBLISH, EXIT_SOME_FAILED, ConversionError, Stage
from myriad_blob.pipeline import convert, report_options_error

from . import runner
from .event import Event
from .inputs import InputError, OutsideWorkspace, inside_workspace, read_inputs
from .publish import PublishError, client, comment_report, upload_release_assets

EXIT_INPUT = Stage.OPTIONS.exit_code  # an input a user must fix, as a bad flag


def give_back_to_workspace_owner(paths: list[Path], workspace: Path) -> None:
    """The container runs as root; root-owned files in the workspace break the job's later steps."""
    if os.geteuid() != 0 or not workspace.is_dir():
        return
    owner = workspace.stat()
    workspace = workspace.resolve()
    for path in paths:
        path = path.resolve()
        while path != workspace and workspace in path.parents:
            if path.exists() and (path.stat().st_uid, path.stat().st_gid) != (owner.st_uid, owner.st_gid):
                os.chown(path, owner.st_uid, owner.st_gid)
            path = path.parent


def set_outputs(**outputs) -> None:
    for name, value in outputs.items():
        runner.set_output(name.replace("_", "-"), "" if value is None else value)


def fatal_summary(title: str, cause: str, exit_code: int, what_next: str) -> None:
    """A fatal path's step summary: what stopped the step and why, as the annotation says it, plus
    the exit code and what to do (the summary is where a workflow's user looks first)."""
    runner.append_summary(f"## ❌ {title}\n\n{cause}\n\nExit code {exit_code}. {what_next}")


def main() -> int:
    try:
        return run()
    except Exception as error:  # a bug of ours; the reports written so far stay
        traceback.print_exc()
        message = f"internal error: {error!r}"
        gha.error(f"{message} (please report it)", title="myriad-blob: internal error")
        fatal_summary(
            "myriad-blob: internal error",
            f"`{message}`",
            EXIT_INTERNAL,
            "This is a bug in myriad-blob, not in your model: please report it with this step's log.",
        )
        set_outputs(status="failed", verdict="failed")
        return EXIT_INTERNAL


def run() -> int:
    event = Event.from_environment()
    workspace = runner.workspace()
    try:
        inputs = read_inputs(workspace)
    except InputError as error:
        gha.error(str(error), title="myriad-blob: invalid input")
        fatal_summary(
            "myriad-blob: invalid input",
            str(error),
            EXIT_INPUT,
            "Fix the input in the workflow file (its `with:`) and run the job again.",
        )
        # On a pull request the report comment was not written: say so, not "no pull request".
        set_outputs(
            status="failed", verdict="failed", comment_status="failed" if event.pull_request else "skipped-no-pr"
        )
        return EXIT_INPUT
    if inputs.github_token:
        gha.add_mask(inputs.github_token)
    outcome = convert_manifest(inputs, event, workspace) if inputs.manifest else convert_model(inputs, event)
    written = [p for p in outcome.files if p.exists()]
    if inputs.cache_dir is not None and inputs.cache_dir.is_dir():  # actions/cache reads it as the runner's user
        written += [inputs.cache_dir, *inputs.cache_dir.rglob("*")]
    give_back_to_workspace_owner(written, workspace)
    runner.append_summary(outcome.markdown)
    set_outputs(**outcome.outputs)
    publish_failed = publish(inputs, event, outcome)
    if outcome.exit_code:
        return outcome.exit_code
    return EXIT_PUBLISH if publish_failed else 0


@dataclasses.dataclass
class Outcome:
    """What a run produced: the step's outputs, the Markdown to show, the files to publish."""

    exit_code: int
    markdown: str
    outputs: dict
    files: list  # everything written into the workspace
    uploads: list  # what goes to the release (nothing when the conversion failed)


def fork_refusal(event: Event, options, where: str = "") -> str | None:
    """Why these options must not run on this event, or None. A fork's pull request under
    pull_request_target runs with a token that can write here: loading a pickle runs the fork's
    code, and model-class imports Python from the checkout (the fork's, if it was checked out)."""
    if not (event.name == "pull_request_target" and event.from_fork):
        return None
    asked = [name for name, on in (("trust-pickle", options.trust_pickle), ("model-class", options.model_class)) if on]
    if not asked:
        return None
    return (
        f"refusing {' and '.join(asked)}{where} for a fork's pull request under pull_request_target: "
        "that would run the fork's code with this repository's token (see the README's fork pattern)"
    )


def convert_model(inputs, event: Event) -> Outcome:
    from myriad_blob.cache import BlobCache

    options = inputs.options
    refusal = fork_refusal(event, options)
    if refusal:
        report = report_options_error(options, ConversionError(Stage.OPTIONS, refusal))
    else:
        report = convert(options, cache=BlobCache(inputs.cache_dir) if inputs.cache_dir else None)
    files = [options.output, options.report_json, options.report_markdown]
    if report.nn_archive:
        files.append(Path(report.nn_archive["path"]))
    if report.depthai_json:  # a YOLO blob's depthai v2 JSON
        files.append(Path(report.depthai_json["path"]))
    markdown = options.report_markdown.read_text() if options.report_markdown.exists() else report.to_markdown()
    failed = report.status != "succeeded"
    if failed:
        gha.error(report.error["message"], title=f"myriad-blob: {report.error['stage']} failed", file=inputs.model)
    for warning in report.warnings:
        gha.warning(warning, title="myriad-blob: check the conversion", file=inputs.model)
    outputs = dict(
        status=report.status,
        verdict=report.to_dict()["verdict"]["result"],
        report_path=options.report_json,
        report_markdown_path=options.report_markdown,
        blob_path=None if failed else options.output,
        blob_sha256=None if failed else report.blob["sha256"],
        blob_size=None if failed else report.blob["size"],
    )
    return Outcome(report.error["exit_code"] if failed else 0, markdown, outputs, files, [] if failed else files)


EXIT_INVALID_MANIFEST = 16


def check_manifest(variants, output_dir: Path, workspace: Path, event: Event) -> None:
    """Refuse, before converting anything, what a manifest must not ask for here: files outside
    the workspace, code from a fork under pull_request_target, two variants writing one blob."""
    from myriad_blob.batch import output_options
    from myriad_blob.manifest import ManifestError

    blobs: dict[str, str] = {}
    for variant in variants:
        options = variant.options
        try:
            inside_workspace(options.input, workspace, f"{variant.id}: model")
            if options.sample is not None:
                inside_workspace(options.sample, workspace, f"{variant.id}: sample")
        except OutsideWorkspace as error:
            raise ManifestError(str(error)) from None
        refusal = fork_refusal(event, options, f" (asked by {variant.id})")
        if refusal:
            raise ManifestError(refusal)
        blob = output_options(variant, output_dir, False).output.name
        if blob in blobs:  # "a-b"/"c" and "a"/"b-c" are both a-b-c.blob
            raise ManifestError(
                f"{blobs[blob]} and {variant.id} would both write {output_dir / blob}: rename a model or a variant"
            )
        blobs[blob] = variant.id


def convert_manifest(inputs, event: Event, workspace: Path) -> Outcome:
    from myriad_blob.batch import convert_all
    from myriad_blob.cache import BlobCache, default_cache_dir
    from myriad_blob.manifest import ManifestError, load_manifest

    output_dir = Path(inputs.output_dir or "blobs")
    try:
        inside_workspace(output_dir, workspace, "input output")
        try:
            variants = load_manifest(inputs.manifest)
        except OSError as error:  # a directory, say, or a file this user cannot read
            raise ManifestError(f"cannot read {inputs.manifest}: {error.strerror}") from None
        check_manifest(variants, output_dir, workspace, event)
    except (ManifestError, OutsideWorkspace) as error:
        gha.error(str(error), title="myriad-blob: invalid manifest", file=str(inputs.manifest))
        return Outcome(
            EXIT_INVALID_MANIFEST,
            f"## ❌ myriad-blob: invalid manifest\n\n{error}\n\n"
            f"Exit code {EXIT_INVALID_MANIFEST}. Fix {inputs.manifest} and run the job again.",
            dict(status="failed", verdict="failed"),
            [],
            [],
        )
    summary = convert_all(variants, output_dir, cache=BlobCache(inputs.cache_dir or default_cache_dir()))
    files, uploads = [output_dir / "batch-report.json", output_dir / "batch-report.md"], []
    for variant in summary["variants"]:
        written = [Path(variant["report"]), Path(variant["report"]).with_suffix(".md")]
        if variant["status"] == "succeeded":
            written += [Path(variant["blob"])] + ([Path(variant["superblob"])] if variant["superblob"] else [])
            written += nn_archives(Path(variant["report"]))
            uploads += written
        else:
            gha.error(
                f"{variant['id']}: {variant['error']['message']}",
                title=f"myriad-blob: {variant['error']['stage']} failed",
                file=str(inputs.manifest),
            )
        files += written
    uploads += files[:2]
    markdown = (output_dir / "batch-report.md").read_text()
    outputs = dict(
        status="failed" if summary["failed"] else "succeeded",
        verdict=summary["verdict"],
        report_path=output_dir / "batch-report.json",
        report_markdown_path=output_dir / "batch-report.md",
        blob_path=None,
        blob_sha256=None,
        blob_size=None,
    )
    return Outcome(EXIT_SOME_FAILED if summary["failed"] else 0, markdown, outputs, files, uploads)


def nn_archives(report_path: Path) -> list[Path]:
    """The NN Archive a variant's report names (nn-archive = true in the manifest), if any."""
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError):
        return []
    # The NN Archive, and a YOLO blob's depthai v2 JSON beside it.
    paths = [(report.get(section) or {}).get("path") for section in ("nn_archive", "depthai_json")]
    return [Path(path) for path in paths if path and Path(path).exists()]


def publish(inputs, event: Event, outcome: Outcome) -> bool:
    """Comment on the pull request and upload to the release, as the event calls for. True if it failed."""
    comment_status, comment_url, release_url, assets = "skipped-no-pr", "", "", []
    api_url = os.environ.get("GITHUB_API_URL") or "https://api.github.com"
    publish_failed = False
    if event.pull_request and not inputs.comment_on_pr:
        comment_status = "skipped-disabled"
    elif event.pull_request and event.from_fork and event.name != "pull_request_target":
        comment_status = "skipped-fork"
        gha.notice(
            "pull requests from forks get a read-only token, so the report is in this step's summary "
            "instead of a comment (see the README for the two-workflow pattern that comments)",
            title="myriad-blob: no comment for a fork",
        )
    elif event.pull_request:
        try:
            result = comment_report(client(inputs.github_token, api_url), event, inputs.model, outcome.markdown)
            comment_status, comment_url = result.status, result.url
        except PublishError as error:
            gha.error(str(error), title="myriad-blob: publishing failed")
            comment_status, publish_failed = "failed", True
    tag = event.release_tag(inputs.release_tag)
    if tag and inputs.upload_to_release and outcome.uploads:
        try:
            result = upload_release_assets(client(inputs.github_token, api_url), event, tag, outcome.uploads)
            release_url, assets = result.url, result.assets
        except PublishError as error:
            gha.error(str(error), title="myriad-blob: publishing failed")
            publish_failed = True
    set_outputs(
        comment_status=comment_status,
        comment_url=comment_url,
        release_url=release_url,
        assets=json.dumps([{k: a[k] for k in ("name", "url", "digest")} for a in assets]),
    )
    return publish_failed


if __name__ == "__main__":
    from myriad_blob.cancel import exit_when_cancelled

    with exit_when_cancelled():  # a cancelled job: children stopped, work directories removed, exit 143
        sys.exit(main())
