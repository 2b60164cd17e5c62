"""`python -m entrypoint`: what the container runs.

Exit status: the converter's own (0, 2, 3, 10–15; see the README), 2 for an invalid input,
or 20 when the conversion succeeded but publishing failed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import github_action_utils as gha

from myriad_blob.errors import ConversionError, Stage
from myriad_blob.options import ConversionOptions
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
    options = inputs.options
    workspace = Path(os.environ.get("GITHUB_WORKSPACE") or ".")

    if event.name == "pull_request_target" and event.from_fork and options.trust_pickle:
        report = report_options_error(options, ConversionError(
            Stage.OPTIONS, "refusing trust-pickle for a fork's pull request under pull_request_target: loading a "
                           "pickle runs its code with this repository's token (see the README's fork pattern)"))
    else:
        try:
            report = convert(options)
        except Exception as error:  # a bug of ours; the report was written, the message is all we have
            gha.error(f"internal error: {error!r} (please report it)", title="myriad-blob: internal error")
            return 1

    written = [options.output, options.report_json, options.report_markdown]
    give_back_to_workspace_owner([p for p in written if p.exists()], workspace)
    markdown = options.report_markdown.read_text() if options.report_markdown.exists() else report.to_markdown()
    gha.append_job_summary(markdown)
    failed = report.status != "succeeded"
    if failed:
        gha.error(report.error["message"], title=f"myriad-blob: {report.error['stage']} failed", file=inputs.model)
    for warning in report.warnings:
        gha.warning(warning, title="myriad-blob: check the conversion", file=inputs.model)
    set_outputs(status=report.status, report_path=options.report_json, report_markdown_path=options.report_markdown,
                blob_path=None if failed else options.output,
                blob_sha256=None if failed else report.blob["sha256"],
                blob_size=None if failed else report.blob["size"])

    publish_failed = publish(inputs, event, options, markdown, failed)
    if failed:
        return report.error["exit_code"]
    return EXIT_PUBLISH if publish_failed else 0


def publish(inputs, event: Event, options: ConversionOptions, markdown: str, failed: bool) -> bool:
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
            result = comment_report(client(inputs.github_token, api_url), event, inputs.model, markdown)
            comment_status, comment_url = result.status, result.url
        tag = event.release_tag(inputs.release_tag)
        if tag and inputs.upload_to_release and not failed:
            files = [options.output, options.report_json, options.report_markdown]
            result = upload_release_assets(client(inputs.github_token, api_url), event, tag, files)
            release_url, assets = result.url, result.assets
    except PublishError as error:
        gha.error(str(error), title="myriad-blob: publishing failed")
        publish_failed = True
    set_outputs(comment_status=comment_status, comment_url=comment_url, release_url=release_url,
                assets=json.dumps([{k: a[k] for k in ("name", "url", "digest")} for a in assets]))
    return publish_failed


if __name__ == "__main__":
    sys.exit(main())
