"""`python -m entrypoint`: what the container runs.

Exit status: the converter's own (0, 2, 3, 10–15; see the README), 2 for an invalid input,
or 20 when the conversion succeeded but publishing failed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import sys
import tempfile
import traceback
from pathlib import Path

import github_action_utils as gha

from myriad_blob import toolchain
from myriad_blob.artifacts import ModelFormat
from myriad_blob.batch import convert_all, output_options
from myriad_blob.cache import BlobCache, default_cache_dir
from myriad_blob.errors import EXIT_INTERNAL, EXIT_PUBLISH, EXIT_SOME_FAILED, ConversionError, Stage
from myriad_blob.files import confine_writes
from myriad_blob.load import sniff_format
from myriad_blob.manifest import ManifestError, load_manifest
from myriad_blob.markdown_text import MESSAGE_LIMIT, code
from myriad_blob.markdown_text import message as markdown_message
from myriad_blob.pipeline import convert, report_options_error
from myriad_blob.report import render_markdown
from myriad_blob.report_types import Report

from . import isolation, runner
from .event import Event
from .inputs import InputError, OutsideWorkspace, inside_workspace, read_inputs
from .publish import PublishError, client, comment_report, pull_request_of_run, upload_release_assets

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


def fail_step(title: str, error: str, cause: str, exit_code: int, what_next: str, **outputs) -> int:
    """A fatal path, said the same way everywhere: the annotation (error), the step summary (cause,
    Markdown, with the exit code and what to do), and failed outputs; returns exit_code."""
    gha.error(error, title=title)
    fatal_summary(title, cause, exit_code, what_next)
    set_outputs(status="failed", verdict="failed", **outputs)
    return exit_code


class ChildFailed(Exception):
    """The conversion's process ended without a result: its own words, or how it ended."""


class ChildCancelled(Exception):
    """The job was cancelled (SIGTERM, SIGINT) while the conversion ran: exit as it did."""


def main() -> int:
    try:
        return run()
    except ChildCancelled as cancelled:  # the child said why, cleaned up and wrote its report
        return cancelled.args[0]
    except Exception as error:  # a bug of ours; the reports written so far stay
        if not isinstance(error, ChildFailed):
            traceback.print_exc()
        message = str(error) if isinstance(error, ChildFailed) else f"internal error: {error!r}"
        return fail_step(
            "myriad-blob: internal error",
            f"{message} (please report it)",
            code(message, MESSAGE_LIMIT),  # an exception's text may quote the model
            EXIT_INTERNAL,
            "This is a bug in myriad-blob, not in your model: please report it with this step's log.",
        )


def run() -> int:
    event = Event.from_environment()
    workspace = runner.workspace()
    try:
        inputs = read_inputs(workspace)
    except InputError as error:
        return fail_step(
            "myriad-blob: invalid input",
            str(error),
            markdown_message(str(error)),
            EXIT_INPUT,
            "Fix the input in the workflow file (its `with:`) and run the job again.",
            # On a pull request the report comment was not written: say so, not "no pull request".
            comment_status="failed" if event.pull_request else "skipped-no-pr",
        )
    if inputs.github_token:
        gha.add_mask(inputs.github_token)
    if inputs.comment_from is not None:
        return comment_from_artifact(inputs, event, workspace)
    outcome = convert_in_child(inputs, event, workspace)
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

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> Outcome:
        data = json.loads(text)
        data["files"] = [Path(p) for p in data["files"]]
        data["uploads"] = [Path(p) for p in data["uploads"]]
        return cls(**data)


def convert_in_child(inputs, event: Event, workspace: Path) -> Outcome:
    """The conversion, run by `python -m entrypoint --child` without the token (isolation.py)."""
    isolation.close_own_proc_files()
    with tempfile.TemporaryDirectory(prefix="myriad-blob-child-") as private:
        handover, result = Path(private) / "inputs.pickle", Path(private) / "outcome.json"
        # Our own data for our own child, written before any model is read: no token in it.
        handover.write_bytes(pickle.dumps((dataclasses.replace(inputs, github_token=""), event, workspace)))
        needed = [isolation.interpreter(), Path(sys.prefix), toolchain.default_dir()]
        plan = isolation.plan(workspace, needed)
        if plan.identity is not None:
            os.chown(private, *plan.identity)
        elif plan.how == "root beside the token":
            gha.notice(
                "the conversion runs as root beside the process holding the token (the workspace is "
                "root's and this kernel allows no PID namespace): convert only models you trust here",
                title="myriad-blob: isolation",
            )
        env = isolation.child_environment(inputs.github_token) | {"MYRIAD_BLOB_CHILD_DIR": private}
        argv = [*plan.prefix, sys.executable, "-P", "-m", "entrypoint", "--child"]
        code = isolation.run_child(argv, env, plan.identity)
        if code < 0:  # ended by a signal (unshare, when the job is cancelled): as a shell reports it
            code = 128 - code
        try:
            text = result.read_text()
        except OSError:
            if code in (130, 143):
                raise ChildCancelled(code) from None
            raise ChildFailed(
                f"internal error: the conversion process ended with exit code {code} and no result"
            ) from None
    if text.startswith("internal error:"):  # its words may quote what the model's code read
        raise ChildFailed(isolation.redact(text, inputs.github_token))
    outcome = Outcome.from_json(text)
    outcome.markdown = isolation.redact(outcome.markdown, inputs.github_token)  # what the model's code may have read
    # Model code ran in the child: what it names is published only from inside the workspace and
    # never through a link (a link to /proc/1/environ would upload this process's environment).
    outcome.files = [path for path in outcome.files if _publishable(path, workspace)]
    outcome.uploads = [path for path in outcome.uploads if _publishable(path, workspace)]
    return outcome


def _publishable(path: Path, workspace: Path) -> bool:
    try:
        inside_workspace(path, workspace, "file")
    except OutsideWorkspace as error:
        gha.warning(f"not published: {error}", title="myriad-blob: a file outside the workspace")
        return False
    if path.is_symlink():
        gha.warning(f"not published: {path} is a symbolic link", title="myriad-blob: a file outside the workspace")
        return False
    return True


# A report JSON larger than this is no report of ours (a big model's is about 100 KB).
REPORT_LIMIT = 8 * 1024 * 1024
UNTRUSTED_BANNER = (
    "> Converted by this pull request's own workflow run, whose code made this report; "
    "posted by a `workflow_run` workflow that loaded no model."
)


def comment_from_artifact(inputs, event: Event, workspace: Path) -> int:
    """Comment mode (input comment-from, on workflow_run): the report a pull_request run wrote is
    read as data (checked against the report's schema), rendered by our own renderer, and kept as
    the pull request's one comment for that model. No model is loaded; the pull request is found
    from GitHub's own account of the run (publish.pull_request_of_run)."""

    def refuse(message: str) -> int:
        return fail_step(
            "myriad-blob: comment-from",
            message,
            markdown_message(message),
            EXIT_INPUT,
            "Fix the workflow and run it again.",
            comment_status="failed",
        )

    if event.name != "workflow_run":
        return refuse(f"comment-from is for a workflow_run workflow, not {event.name or 'this event'}: see the README")
    run = event.payload.get("workflow_run") or {}
    if run.get("event") not in ("pull_request", "pull_request_target"):
        set_outputs(comment_status="skipped-no-pr")
        gha.notice("the workflow run was not a pull request's: nothing to comment", title="myriad-blob: comment-from")
        return 0
    path = workspace / inputs.comment_from
    try:
        if path.is_symlink() or not path.is_file():
            raise OSError(f"{inputs.comment_from} is not a regular file (did the artifact download?)")
        if path.stat().st_size > REPORT_LIMIT:
            raise OSError(f"{inputs.comment_from} is over {REPORT_LIMIT // 2**20} MiB: not a myriad-blob report")
        report = validated_report(json.loads(path.read_text(encoding="utf-8")))
        markdown = f"{UNTRUSTED_BANNER}\n\n{render_markdown(report)}"
    except (OSError, ValueError, KeyError, TypeError) as error:
        return refuse(f"comment-from: {inputs.comment_from} is not a myriad-blob report: {str(error)[:300]}")
    api_url = os.environ.get("GITHUB_API_URL") or "https://api.github.com"
    gh = client(inputs.github_token, api_url)
    try:
        number = pull_request_of_run(gh, event.repository, run)
        if number is None:
            gha.notice("no open pull request has the run's head commit: nothing to comment", title="myriad-blob")
            set_outputs(comment_status="skipped-no-pr", verdict=report["verdict"]["result"])
            return 0
        result = comment_report(gh, event.repository, number, report["options"]["input"], markdown)
    except PublishError as error:
        gha.error(str(error), title="myriad-blob: publishing failed")
        set_outputs(comment_status="failed", verdict=report["verdict"]["result"])
        return EXIT_PUBLISH
    runner.append_summary(markdown)
    set_outputs(
        comment_status=result.status,
        comment_url=result.url,
        verdict=report["verdict"]["result"],
        status=report["status"],
    )
    return 0


def validated_report(data) -> dict:
    """The report, checked against its types (report_types.Report: what docs/report.schema.json says)."""
    from pydantic import TypeAdapter, ValidationError

    try:
        TypeAdapter(Report).validate_python(data, strict=False)
    except ValidationError as error:
        raise ValueError(
            f"{error.error_count()} fields differ from the report's schema, first {error.errors()[0]['loc']}"
        ) from None
    return data


def child_main() -> int:
    """In the child: convert as the inputs say, leave the outcome for the parent."""
    private = Path(os.environ["MYRIAD_BLOB_CHILD_DIR"])
    try:
        # What the parent read (its notices said what was missing): read once, not twice.
        inputs, event, workspace = pickle.loads((private / "inputs.pickle").read_bytes())
        confine_writes(workspace)
        text = (
            convert_manifest(inputs, event, workspace) if inputs.manifest else convert_model(inputs, event)
        ).to_json()
    except Exception as error:  # a bug of ours: the parent reports it
        traceback.print_exc()
        text = f"internal error: {error!r}"
    (private / "outcome.json").write_text(text)
    return 0


def fork_refusal(event: Event, options, where: str = "") -> str | None:
    """Why these options must not run on this event, or None. A fork's pull request under
    pull_request_target (or a workflow_run of a fork's run) runs with a token that can write here,
    so only data converts: ONNX.
    Pickles, TorchScript and torch.export programs run code when loaded or exported, and
    model-class imports Python from the checkout (the fork's, if it was checked out). Decided from
    the file's bytes (load.sniff_format reads a zip's names or parses ONNX), before any loading."""
    if not event.fork_code_with_write_token:
        return None
    asked = [name for name, on in (("trust-pickle", options.trust_pickle), ("model-class", options.model_class)) if on]
    why = "that would run the fork's code with this repository's token"
    if not asked:
        try:
            fmt = sniff_format(options.input)
        except ConversionError:
            return None  # missing or unreadable: the conversion's load stage says so
        if fmt == ModelFormat.ONNX:
            return None
        asked = [f"the {fmt} {options.input}"]
        why = f"a {fmt} runs code when it is loaded or exported, with this repository's token within reach; only ONNX converts here"
    return (
        f"refusing {' and '.join(asked)}{where} for a fork's pull request under {event.name}: "
        f'{why} (see the README\'s "Pull requests from forks" for the pull_request + workflow_run pattern)'
    )


def convert_model(inputs, event: Event) -> Outcome:
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
    blobs: dict[str, str] = {}
    for variant in variants:
        options = variant.options
        try:
            inside_workspace(options.input, workspace, f"{variant.id}: model")
            for sample in options.samples.values():
                inside_workspace(sample, workspace, f"{variant.id}: sample")
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
            f"## ❌ myriad-blob: invalid manifest\n\n{markdown_message(str(error))}\n\n"
            f"Exit code {EXIT_INVALID_MANIFEST}. Fix {code(inputs.manifest)} and run the job again.",
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
            result = comment_report(
                client(inputs.github_token, api_url),
                event.repository,
                event.pull_request_number,
                inputs.model,
                outcome.markdown,
            )
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

    # A cancelled job: children stopped, work directories removed, exit 143 (the parent passes the
    # signal on to the conversion's process while it runs, and exits as it did).
    with exit_when_cancelled():
        sys.exit(child_main() if sys.argv[1:] == ["--child"] else main())
