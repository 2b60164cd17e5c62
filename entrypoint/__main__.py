"""`python -m entrypoint`: what the container runs.

Exit status: the converter's own (0, 2, 3, 10–15; see the README), 2 for an invalid input,
or 20 when the conversion succeeded but publishing failed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import github_action_utils as gha

from myriad_blob.errors import ConversionError, Stage
from myriad_blob.pipeline import convert, report_options_error

from .event import Event
from .inputs import InputError, read_inputs
from .publish import PublishError, client, comment_report, upload_release_assets

EXIT_INPUT = 2
EXIT_PUBLISH = 20


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
        gha.set_output(name.replace("_", "-"), "" if value is None else value)


def main() -> int:
    try:
        inputs = read_inputs()
    except InputError as error:
        gha.error(str(error), title="myriad-blob: invalid input")
        set_outputs(status="failed", comment_status="skipped-no-pr")
        return EXIT_INPUT
    if inputs.github_token:
        gha.add_mask(inputs.github_token)
    event = Event.from_environment()
    workspace = Path(os.environ.get("GITHUB_WORKSPACE") or ".")
    try:
        outcome = convert_manifest(inputs, event) if inputs.manifest else convert_model(inputs, event)
    except Exception as error:  # a bug of ours; the reports written so far stay
        gha.error(f"internal error: {error!r} (please report it)", title="myriad-blob: internal error")
        return 1
    give_back_to_workspace_owner([p for p in outcome.files if p.exists()], workspace)
    gha.append_job_summary(outcome.markdown)
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


def convert_model(inputs, event: Event) -> Outcome:
    options = inputs.options
    if event.name == "pull_request_target" and event.from_fork and options.trust_pickle:
        report = report_options_error(options, ConversionError(
            Stage.OPTIONS, "refusing trust-pickle for a fork's pull request under pull_request_target: loading a "
                           "pickle runs its code with this repository's token (see the README's fork pattern)"))
    else:
        report = convert(options)
    files = [options.output, options.report_json, options.report_markdown]
    markdown = options.report_markdown.read_text() if options.report_markdown.exists() else report.to_markdown()
    failed = report.status != "succeeded"
    if failed:
        gha.error(report.error["message"], title=f"myriad-blob: {report.error['stage']} failed", file=inputs.model)
    for warning in report.warnings:
        gha.warning(warning, title="myriad-blob: check the conversion", file=inputs.model)
    outputs = dict(status=report.status, report_path=options.report_json,
                   report_markdown_path=options.report_markdown, blob_path=None if failed else options.output,
                   blob_sha256=None if failed else report.blob["sha256"],
                   blob_size=None if failed else report.blob["size"])
    return Outcome(report.error["exit_code"] if failed else 0, markdown, outputs, files, [] if failed else files)


def convert_manifest(inputs, event: Event) -> Outcome:
    from myriad_blob.batch import EXIT_SOME_FAILED, convert_all
    from myriad_blob.cache import BlobCache, default_cache_dir
    from myriad_blob.manifest import ManifestError, load_manifest

    output_dir = Path(inputs.output_dir or "blobs")
    try:
        variants = load_manifest(inputs.manifest)
    except ManifestError as error:
        gha.error(str(error), title="myriad-blob: invalid manifest", file=str(inputs.manifest))
        return Outcome(16, f"myriad-blob: invalid manifest: {error}", dict(status="failed"), [], [])
    summary = convert_all(variants, output_dir, cache=BlobCache(default_cache_dir()))
    files, uploads = [output_dir / "batch-report.json", output_dir / "batch-report.md"], []
    for variant in summary["variants"]:
        written = [Path(variant["report"]), Path(variant["report"]).with_suffix(".md")]
        if variant["status"] == "succeeded":
            written += [Path(variant["blob"])] + ([Path(variant["superblob"])] if variant["superblob"] else [])
            uploads += written
        else:
            gha.error(f"{variant['id']}: {variant['error']['message']}",
                      title=f"myriad-blob: {variant['error']['stage']} failed", file=str(inputs.manifest))
        files += written
    uploads += files[:2]
    markdown = (output_dir / "batch-report.md").read_text()
    outputs = dict(status="failed" if summary["failed"] else "succeeded", report_path=output_dir / "batch-report.json",
                   report_markdown_path=output_dir / "batch-report.md", blob_path=None, blob_sha256=None,
                   blob_size=None)
    return Outcome(EXIT_SOME_FAILED if summary["failed"] else 0, markdown, outputs, files, uploads)


def publish(inputs, event: Event, outcome: Outcome) -> bool:
    """Comment on the pull request and upload to the release, as the event calls for. True if it failed."""
    comment_status, comment_url, release_url, assets = "skipped-no-pr", "", "", []
    api_url = os.environ.get("GITHUB_API_URL") or "https://api.github.com"
    publish_failed = False
    try:
        if event.pull_request and not inputs.comment_on_pr:
            comment_status = "skipped-disabled"
        elif event.pull_request and event.from_fork:
            comment_status = "skipped-fork"
            gha.notice("pull requests from forks get a read-only token, so the report is in this step's summary "
                       "instead of a comment (see the README for the two-workflow pattern that comments)",
                       title="myriad-blob: no comment for a fork")
        elif event.pull_request:
            result = comment_report(client(inputs.github_token, api_url), event, inputs.model, outcome.markdown)
            comment_status, comment_url = result.status, result.url
        tag = event.release_tag(inputs.release_tag)
        if tag and inputs.upload_to_release and outcome.uploads:
            result = upload_release_assets(client(inputs.github_token, api_url), event, tag, outcome.uploads)
            release_url, assets = result.url, result.assets
    except PublishError as error:
        gha.error(str(error), title="myriad-blob: publishing failed")
        publish_failed = True
    set_outputs(comment_status=comment_status, comment_url=comment_url, release_url=release_url,
                assets=json.dumps([{k: a[k] for k in ("name", "url", "digest")} for a in assets]))
    return publish_failed


if __name__ == "__main__":
    sys.exit(main())
