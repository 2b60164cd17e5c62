"""The action's entrypoint run as GitHub runs it: INPUT_* variables, an event payload file (from
GitHub's published webhook examples), PATH set to nonsense, no HOME, and the real PyGithub client
over real HTTP against a local server answering the GitHub REST endpoints."""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from github_api import USER, Failure, user
from hostile_markdown import PAYLOAD, assert_safe, hostile_onnx
from myriad_blob import toolchain
from myriad_blob.options import OPTIONS

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "ghs_TESTTOKEN1234567890abcdef"
REPO = "Codertocat/Hello-World"
MARKER = "<!-- myriad-blob report: models/detector.onnx -->"
NAMES = ["detector.blob", "detector.blob.report.json", "detector.blob.report.md"]
# MYRIAD_BLOB_ACTION_IMAGE=<image>: run the built image (docker run) instead of `python -m entrypoint`,
# as the release workflow does before it pushes the image.
IMAGE = os.environ.get("MYRIAD_BLOB_ACTION_IMAGE")


def example(webhooks, event, **match):
    for payload in webhooks[event]:
        if all(payload.get(k) == v for k, v in match.items()):
            return copy.deepcopy(payload)
    raise LookupError(f"no {event} example with {match}")


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """A blob cache shared by the tests about publishing, so only the first one converts."""
    return tmp_path_factory.mktemp("shared-blob-cache")


class ActionRun:
    def __init__(self, result, outputs, summary):
        self.result, self.outputs, self.summary = result, outputs, summary
        self.returncode, self.stdout, self.stderr = result.returncode, result.stdout, result.stderr


def parse_outputs(text: str) -> dict:
    """GITHUB_OUTPUT's `name<<DELIMITER ... DELIMITER` records."""
    outputs, lines = {}, iter(text.splitlines())
    for line in lines:
        name, _, delimiter = line.partition("<<")
        value = []
        for inner in lines:
            if inner == delimiter:
                break
            value.append(inner)
        outputs[name] = "\n".join(value)
    return outputs


def run_action(workspace, github, event_name, payload, runner_env=None, **inputs):
    """`runner_env`: variables to change in the runner's environment (None: leave it unset)."""
    runner = workspace.parent / f"runner-{len(list(workspace.parent.glob('runner-*')))}"
    runner.mkdir()
    (runner / "event.json").write_text(json.dumps(payload))
    env = {
        "PATH": "/nonexistent",  # the entrypoint must not rely on the caller's PATH (or HOME: unset)
        "PYTHONPATH": str(ROOT),
        "MYRIAD_BLOB_TOOLCHAIN": str(toolchain.default_dir()),
        "MYRIAD_BLOB_CACHE_DIR": os.environ["MYRIAD_BLOB_CACHE_DIR"],
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(runner / "event.json"),
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": github.api_url,
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(runner / "output"),
        "GITHUB_STEP_SUMMARY": str(runner / "summary.md"),
        "GITHUB_REF": payload.get("ref", ""),
        "MYRIAD_BLOB_RETRY_SECONDS": "0.05",  # retries as in production, with shorter waits
    }
    # As action.yml's defaults arrive: every declared input is set, empty when it has no default.
    defaults = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
    defaults.update({"model": "models/detector.onnx", "github-token": TOKEN})
    for name, value in {**defaults, **inputs}.items():
        env[f"INPUT_{name.upper()}"] = value
    for name, value in (runner_env or {}).items():
        env.pop(name, None) if value is None else env.__setitem__(name, value)
    if IMAGE:
        shared = workspace.parent.parent  # pytest's base temporary directory: every path the test uses
        command = ["docker", "run", "--rm", "--network", "host", "-v", f"{shared}:{shared}", "-w", str(workspace)]
        for name in env:
            if name not in ("PATH", "PYTHONPATH", "MYRIAD_BLOB_TOOLCHAIN"):
                command += ["-e", name]
        env["PATH"] = os.environ["PATH"]
        command.append(IMAGE)
    else:
        command = [sys.executable, "-P", "-m", "entrypoint"]
    result = subprocess.run(command, cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
    outputs = parse_outputs((runner / "output").read_text()) if (runner / "output").exists() else {}
    summary = (runner / "summary.md").read_text() if (runner / "summary.md").exists() else ""
    # The token may appear only in the ::add-mask:: command, which the runner consumes and never shows.
    shown = [line for line in result.stdout.splitlines() if not line.startswith("::add-mask")]
    assert TOKEN not in "\n".join(shown) + result.stderr + summary + json.dumps(outputs)
    assert f"::add-mask ::{TOKEN}" in result.stdout or "github-token" not in str(inputs)
    return ActionRun(result, outputs, summary)


ACTION = yaml.safe_load((ROOT / "action.yml").read_text())


def test_pull_request_comment_is_created_then_edited_in_place(workspace, github, webhooks):
    payload = example(webhooks, "pull_request", action="opened")
    first = run_action(workspace, github, "pull_request", payload)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.outputs["comment-status"] == "created"
    assert first.outputs["status"] == "succeeded" and first.outputs["verdict"] == "passed"
    assert first.outputs["blob-path"] == "detector.blob" and (workspace / "detector.blob").exists()
    assert len(first.outputs["blob-sha256"]) == 64 and int(first.outputs["blob-size"]) > 0
    assert first.outputs["report-path"] == "detector.blob.report.json"
    assert "✅ **Converted**" in first.summary
    (comment,) = github.comments[payload["number"]]
    assert comment["body"].startswith("<!-- myriad-blob report: models/detector.onnx -->")
    assert first.outputs["comment-url"] == comment["html_url"]
    assert all(r.authorization and TOKEN in r.authorization for r in github.requests)

    # A push to the pull request that changes the conversion (the report's timings alone are
    # rounded to 0.01 s, so an unchanged conversion may write the same report: "unchanged").
    second = run_action(
        workspace,
        github,
        "pull_request",
        example(webhooks, "pull_request", action="synchronize"),
        **{"reverse-input-channels": "true"},
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.outputs["comment-status"] == "updated"
    assert len(github.calls("POST", r".*/issues/\d+/comments")) == 1
    assert len(github.calls("PATCH", r".*/issues/comments/\d+")) == 1
    assert len(github.comments[payload["number"]]) == 1


def test_each_model_gets_its_own_comment(workspace, github, webhooks, model_files):
    shutil.copy(model_files["torchscript"], workspace / "models" / "classifier.pt")
    payload = example(webhooks, "pull_request", action="opened")
    assert run_action(workspace, github, "pull_request", payload).returncode == 0
    run = run_action(
        workspace, github, "pull_request", payload, model="models/classifier.pt", **{"input-shape": "[1, 3, 64, 80]"}
    )
    assert run.returncode == 0, run.stdout
    assert run.outputs["comment-status"] == "created"
    assert len(github.comments[payload["number"]]) == 2


def test_fork_pull_request_degrades_to_a_notice(workspace, github, webhooks):
    payload = example(webhooks, "pull_request", action="opened")
    payload["pull_request"]["head"]["repo"]["full_name"] = "forker/Hello-World"
    payload["pull_request"]["head"]["repo"]["fork"] = True
    run = run_action(workspace, github, "pull_request", payload)
    assert run.returncode == 0, run.stdout
    assert run.outputs["comment-status"] == "skipped-fork"
    assert "::notice title=myriad-blob%3A no comment for a fork::" in run.stdout
    assert "✅ **Converted**" in run.summary
    assert github.requests == []


def test_a_models_names_cannot_write_markdown_into_the_pull_request_comment(workspace, github, webhooks):
    """Issue #24: node, tensor and output names holding a heading, a team mention, an <img> and an
    unclosed <!-- reach the comment (and the step summary) only as code."""
    hostile_onnx(workspace / "models" / "detector.onnx")
    payload = example(webhooks, "pull_request", action="opened")
    run = run_action(workspace, github, "pull_request", payload)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.outputs["comment-status"] == "created"
    (comment,) = github.comments[payload["number"]]
    for markdown, markers in ((comment["body"], 1), (run.summary, 0)):
        rendered = assert_safe(markdown, headings=1, comments=markers)
        assert "<code>x" + PAYLOAD.replace("\n", "⏎").replace("<", "&lt;").replace(">", "&gt;") in rendered
    assert comment["body"].startswith(MARKER + "\n### myriad-blob: `detector.onnx`\n\n✅ **Converted**")


def test_release_published_uploads_assets_then_replaces_only_what_changed(workspace, github, webhooks):
    payload = example(webhooks, "release", action="published")
    github.add_release(payload["release"]["tag_name"], release_id=payload["release"]["id"])
    first = run_action(workspace, github, "release", payload)
    assert first.returncode == 0, first.stdout
    names = ["detector.blob", "detector.blob.report.json", "detector.blob.report.md"]
    assets = json.loads(first.outputs["assets"])
    assert [a["name"] for a in assets] == names
    assert first.outputs["release-url"].endswith(f"/releases/tag/{payload['release']['tag_name']}")
    (release,) = github.releases
    assert sorted(a["name"] for a in release["assets"]) == names
    blob_digest = next(a["digest"] for a in release["assets"] if a["name"] == "detector.blob")
    assert blob_digest == "sha256:" + first.outputs["blob-sha256"]
    assert first.outputs["comment-status"] == "skipped-no-pr"

    second = run_action(workspace, github, "release", payload)
    assert second.returncode == 0, second.stdout
    # Same model, same blob: the blob asset is left alone; the reports (new timings) are replaced.
    assert sorted(a["name"] for a in release["assets"]) == names
    uploads = [
        re.sub(r"^myriad-blob-upload-[0-9a-f]{8}-", "", r.query["name"])
        for r in github.calls("POST", r"/api/uploads/.*")
    ]
    assert uploads.count("detector.blob") == 1 and uploads.count("detector.blob.report.json") == 2
    # The Markdown report shows timings rounded to 0.01 s, so two runs can write the same bytes: it is
    # replaced exactly when they differ.
    markdown_changed = first.summary != second.summary  # the step summary is the Markdown report
    assert uploads.count("detector.blob.report.md") == 1 + markdown_changed
    # A replacement is uploaded under a temporary name, then the old asset goes and the new is renamed.
    assert len(github.calls("DELETE", r".*/releases/assets/\d+")) == 1 + markdown_changed
    assert len(github.calls("PATCH", r".*/releases/assets/\d+")) == 1 + markdown_changed
    assert {a["name"]: a["state"] for a in release["assets"]} == dict.fromkeys(names, "uploaded")


def test_pushed_tag_creates_the_release_or_finds_a_draft(workspace, github, webhooks):
    payload = example(webhooks, "push", ref="refs/tags/simple-tag", deleted=False)
    run = run_action(workspace, github, "push", payload)
    assert run.returncode == 0, run.stdout
    assert len(github.calls("POST", r".*/repos/Codertocat/Hello-World/releases")) == 1
    assert github.releases[0]["tag_name"] == "simple-tag" and len(github.releases[0]["assets"]) == 3

    github.releases.clear()
    draft = github.add_release("simple-tag", draft=True)
    run = run_action(workspace, github, "push", payload)
    assert run.returncode == 0, run.stdout
    assert github.releases == [draft] and len(draft["assets"]) == 3


def test_upload_race_already_exists_is_handled_once(workspace, github, webhooks):
    payload = example(webhooks, "release", action="published")
    github.add_release(payload["release"]["tag_name"], release_id=payload["release"]["id"])
    github.fail_next.append(
        (
            "POST",
            r"/api/uploads/.*",
            422,
            {
                "message": "Validation Failed",
                "errors": [{"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}],
            },
        )
    )
    run = run_action(workspace, github, "release", payload)
    assert run.returncode == 0, run.stdout
    assert len(github.releases[0]["assets"]) == 3


def test_immutable_release_is_a_clear_error(workspace, github, webhooks):
    payload = example(webhooks, "release", action="published")
    github.add_release(payload["release"]["tag_name"], release_id=payload["release"]["id"], immutable=True)
    run = run_action(workspace, github, "release", payload)
    assert run.returncode == 20
    assert "::error title=myriad-blob%3A publishing failed::release 0.0.1 is immutable" in run.stdout
    assert github.calls("POST", r"/api/uploads/.*") == []


def test_publish_failure_after_retries_fails_the_step(workspace, github, webhooks):
    github.fail_next += [("POST", r".*/issues/\d+/comments", 503, {"message": "Unavailable"})] * 6
    run = run_action(workspace, github, "pull_request", example(webhooks, "pull_request", action="opened"))
    assert run.returncode == 20, run.stdout + run.stderr
    assert (
        "::error title=myriad-blob%3A publishing failed::could not comment on pull request #2: GitHub answered "
        "503 Unavailable on each of 5 attempts" in run.stdout
    )
    assert "Traceback" not in run.stdout + run.stderr
    assert run.outputs["comment-status"] == "failed" and github.comments[2] == []


def test_failed_conversion_is_annotated_and_still_reported(workspace, github, webhooks):
    (workspace / "models" / "broken.onnx").write_text("not a model\n")
    run = run_action(
        workspace,
        github,
        "pull_request",
        example(webhooks, "pull_request", action="opened"),
        model="models/broken.onnx",
    )
    assert run.returncode == 10
    assert "::error title=myriad-blob%3A load failed,file=models/broken.onnx::" in run.stdout
    assert run.outputs["status"] == "failed" and run.outputs["blob-path"] == "" and run.outputs["verdict"] == "failed"
    (comment,) = github.comments[2]
    assert "❌ **Failed** at stage `load`" in comment["body"]


def test_inputs_are_validated(workspace, github, webhooks):
    run = run_action(
        workspace,
        github,
        "pull_request",
        example(webhooks, "pull_request", action="opened"),
        **{"comment-on-pr": "yes"},
    )
    assert run.returncode == 2
    assert "input comment-on-pr must be true or false" in run.stdout
    run = run_action(
        workspace, github, "pull_request", example(webhooks, "pull_request", action="opened"), nshaves="six"
    )
    assert run.returncode == 2 and "input nshaves must be a whole number" in run.stdout
    assert github.requests == []
    # The step summary says it too (the annotation alone is easy to miss), with the exit code.
    assert run.summary.startswith("## ❌ myriad-blob: invalid input\n\ninput nshaves must be a whole number")
    assert "Exit code 2." in run.summary


@pytest.mark.skipif(os.geteuid() != 0, reason="changing file owners needs root, as in the container")
def test_files_are_given_back_to_the_workspace_owner(workspace, github, webhooks):
    for path in [workspace, *workspace.rglob("*")]:
        os.chown(path, 1234, 1234)
    run = run_action(
        workspace,
        github,
        "push",
        example(webhooks, "push", ref="refs/heads/master"),
        output="out/blobs/detector.blob",
        **{"cache-dir": ".cache/blobs"},
    )
    assert run.returncode == 0, run.stdout
    cached = [str(p.relative_to(workspace)) for p in (workspace / ".cache").rglob("*")]
    assert any(p.endswith("model.blob") for p in cached)
    for path in [
        "out",
        "out/blobs",
        "out/blobs/detector.blob",
        "out/blobs/detector.blob.report.json",
        "out/blobs/detector.blob.report.md",
        ".cache",
        *cached,
    ]:
        stat = (workspace / path).stat()
        assert (stat.st_uid, stat.st_gid) == (1234, 1234), path


def test_manifest_converts_every_variant_with_one_comment_and_one_upload(workspace, github, webhooks):
    (workspace / "myriad-blob.toml").write_text(
        '[[models]]\nname = "detector"\nmodel = "models/detector.onnx"\n'
        '[[models.variants]]\nname = "six"\n[[models.variants]]\nname = "four"\nnshaves = 4\n'
    )
    run = run_action(
        workspace,
        github,
        "pull_request",
        example(webhooks, "pull_request", action="opened"),
        model="",
        manifest="myriad-blob.toml",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.outputs["status"] == "succeeded" and run.outputs["report-path"] == "blobs/batch-report.json"
    assert run.outputs["verdict"] in ("passed", "warnings")  # the worst of the two variants'
    (comment,) = github.comments[2]
    assert "2 of 2 variants converted" in comment["body"] and "`detector/four`" in comment["body"]

    payload = example(webhooks, "release", action="published")
    github.add_release(payload["release"]["tag_name"], release_id=payload["release"]["id"])
    run = run_action(workspace, github, "release", payload, model="", manifest="myriad-blob.toml")
    assert run.returncode == 0, run.stdout
    names = sorted(a["name"] for a in github.releases[0]["assets"])
    assert names == sorted(
        [
            "detector-six.blob",
            "detector-six.blob.report.json",
            "detector-six.blob.report.md",
            "detector-four.blob",
            "detector-four.blob.report.json",
            "detector-four.blob.report.md",
            "batch-report.json",
            "batch-report.md",
        ]
    )


def test_model_and_manifest_together_are_refused(workspace, github, webhooks):
    run = run_action(
        workspace,
        github,
        "pull_request",
        example(webhooks, "pull_request", action="opened"),
        manifest="myriad-blob.toml",
    )
    assert run.returncode == 2 and "give exactly one of the inputs model" in run.stdout


# --- writes that fail: retried without duplicates (the "Done when" list)


def _comment_create(github, webhooks):
    return "pull_request", example(webhooks, "pull_request", action="opened")


def _comment_edit(github, webhooks):
    github.add_comment(2, f"{MARKER}\nan older report", USER)
    return "pull_request", example(webhooks, "pull_request", action="synchronize")


def _release_create(github, webhooks):
    return "push", example(webhooks, "push", ref="refs/tags/simple-tag", deleted=False)


def _asset_upload(github, webhooks):
    payload = example(webhooks, "release", action="published")
    github.add_release(payload["release"]["tag_name"], release_id=payload["release"]["id"])
    return "release", payload


def _asset_delete(github, webhooks):
    event, payload = _asset_upload(github, webhooks)
    github.add_asset(github.releases[0], "detector.blob", b"an older blob")  # replaced: upload, delete, rename
    return event, payload


WRITES = {
    "comment create": (_comment_create, "POST", r".*/issues/\d+/comments"),
    "comment edit": (_comment_edit, "PATCH", r".*/issues/comments/\d+"),
    "release create": (_release_create, "POST", r".*/repos/[^/]+/[^/]+/releases"),
    "asset upload": (_asset_upload, "POST", r"/api/uploads/.*"),
    "asset delete": (_asset_delete, "DELETE", r".*/releases/assets/\d+"),
}


@pytest.mark.parametrize("applied", [False, True], ids=["failed", "done-but-answer-lost"])
@pytest.mark.parametrize("write", list(WRITES))
def test_a_502_on_each_write_is_retried_without_duplicates(workspace, github, webhooks, shared_cache, write, applied):
    prepare, method, pattern = WRITES[write]
    event, payload = prepare(github, webhooks)
    # The 502 either stops the write, or comes after it happened (a proxy lost GitHub's answer).
    github.fail_next.append(Failure(method, pattern, 502, {"message": "Server Error"}, applied=applied))
    run = run_action(workspace, github, event, payload, **{"cache-dir": str(shared_cache)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert github.fail_next == [], "the failure was never hit"
    if event == "pull_request":
        (comment,) = github.comments[2]
        assert comment["body"].startswith(MARKER) and "✅ **Converted**" in comment["body"]
        assert run.outputs["comment-status"] == ("created" if write == "comment create" else "updated")
        assert run.outputs["comment-url"] == comment["html_url"]
    else:
        (release,) = github.releases
        assert sorted(a["name"] for a in release["assets"]) == NAMES  # one asset per name, no leftovers
        assert all(a["state"] == "uploaded" for a in release["assets"])
        assert not release["draft"]
        blob = next(a for a in release["assets"] if a["name"] == "detector.blob")
        assert blob["digest"] == "sha256:" + run.outputs["blob-sha256"]


def test_release_created_concurrently_by_another_run(workspace, github, webhooks, shared_cache):
    """Our create answers 422 already_exists: another run made the tag's release; use that one."""
    payload = example(webhooks, "push", ref="refs/tags/simple-tag", deleted=False)
    github.fail_next.append(
        Failure(
            "POST",
            r".*/releases",
            422,
            {
                "message": "Validation Failed",
                "errors": [{"resource": "Release", "code": "already_exists", "field": "tag_name"}],
            },
            applied=True,
        )
    )
    run = run_action(workspace, github, "push", payload, **{"cache-dir": str(shared_cache)})
    assert run.returncode == 0, run.stdout + run.stderr
    (release,) = github.releases
    assert sorted(a["name"] for a in release["assets"]) == NAMES and not release["draft"]


def test_asset_already_deleted_by_another_run_is_fine(workspace, github, webhooks, shared_cache):
    event, payload = _asset_delete(github, webhooks)
    # Another run deletes the old blob between our listing and our delete: our DELETE gets a 404.
    github.fail_next.append(Failure("DELETE", r".*/releases/assets/\d+", 404, {"message": "Not Found"}, applied=True))
    run = run_action(workspace, github, event, payload, **{"cache-dir": str(shared_cache)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(a["name"] for a in github.releases[0]["assets"]) == NAMES


def test_a_half_finished_upload_is_cleared_and_redone(workspace, github, webhooks, shared_cache):
    event, payload = _asset_upload(github, webhooks)
    github.add_asset(github.releases[0], "detector.blob", b"", state="starter")  # a failed upload leaves this
    run = run_action(workspace, github, event, payload, **{"cache-dir": str(shared_cache)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert {a["name"]: a["state"] for a in github.releases[0]["assets"]} == dict.fromkeys(NAMES, "uploaded")


# --- whose comment is ours


OTHER = user("mallory", 666)


def test_another_users_comment_with_our_marker_is_left_alone(workspace, github, webhooks, shared_cache):
    theirs = github.add_comment(2, f"{MARKER}\nnot the bot's report", OTHER)
    payload = example(webhooks, "pull_request", action="opened")
    for expected in ("created", "unchanged"):
        run = run_action(workspace, github, "pull_request", payload, **{"cache-dir": str(shared_cache)})
        assert run.returncode == 0, run.stdout + run.stderr
        assert run.outputs["comment-status"] in (expected, "updated")
    other, ours = github.comments[2]
    assert other is theirs and other["body"] == f"{MARKER}\nnot the bot's report"
    assert ours["user"]["login"] == "github-actions[bot]" and "✅ **Converted**" in ours["body"]
    assert not github.calls("PATCH", rf".*/issues/comments/{theirs['id']}")
    assert not github.calls("DELETE", rf".*/issues/comments/{theirs['id']}")


def test_a_personal_token_owns_its_own_comments_only(workspace, github, webhooks, shared_cache):
    """With a PAT the comments are the PAT owner's: the bot's comment (another identity) stays."""
    github.tokens[TOKEN] = user("release-manager", 4242)
    bots = github.add_comment(2, f"{MARKER}\nwritten with GITHUB_TOKEN", USER)
    payload = example(webhooks, "pull_request", action="opened")
    first = run_action(workspace, github, "pull_request", payload, **{"cache-dir": str(shared_cache)})
    assert first.returncode == 0 and first.outputs["comment-status"] == "created", first.stdout
    github.comments[2][1]["body"] = f"{MARKER}\nstale"
    second = run_action(workspace, github, "pull_request", payload, **{"cache-dir": str(shared_cache)})
    assert second.outputs["comment-status"] == "updated", second.stdout
    bot, ours = github.comments[2]
    assert bot is bots and bot["body"].endswith("written with GITHUB_TOKEN")
    assert ours["user"]["login"] == "release-manager" and "✅ **Converted**" in ours["body"]
    # Who the token is came from GraphQL's viewer, not from REST's /user (which app tokens cannot read).
    assert github.calls("POST", "/api/graphql") and not github.calls("GET", r".*/user")


def test_without_graphql_the_created_comments_author_tells_who_we_are(workspace, github, webhooks, shared_cache):
    github.graphql_errors = True
    theirs = github.add_comment(2, f"{MARKER}\nnot the bot's report", OTHER)
    payload = example(webhooks, "pull_request", action="opened")
    for _ in range(2):
        run = run_action(workspace, github, "pull_request", payload, **{"cache-dir": str(shared_cache)})
        assert run.returncode == 0 and run.outputs["comment-status"] == "created", run.stdout + run.stderr
    other, ours = github.comments[2]  # the first run's comment was replaced by the second's
    assert other is theirs and ours["user"] == USER
    assert len(github.calls("DELETE", r".*/issues/comments/\d+")) == 1


# --- releases


def test_release_tag_wins_on_a_release_event(workspace, github, webhooks, shared_cache):
    payload = example(webhooks, "release", action="published")
    event_release = github.add_release(payload["release"]["tag_name"], release_id=payload["release"]["id"])
    target = github.add_release("v2.0")
    run = run_action(workspace, github, "release", payload, **{"release-tag": "v2.0", "cache-dir": str(shared_cache)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(a["name"] for a in target["assets"]) == NAMES and event_release["assets"] == []
    assert run.outputs["release-url"].endswith("/releases/tag/v2.0")


def test_release_tag_is_not_used_from_a_pull_request(workspace, github, webhooks, shared_cache):
    run = run_action(
        workspace,
        github,
        "pull_request",
        example(webhooks, "pull_request", action="opened"),
        **{"release-tag": "v2.0", "cache-dir": str(shared_cache)},
    )
    assert run.returncode == 0, run.stdout
    assert github.releases == [] and not github.calls("POST", r"/api/uploads/.*")


def test_immutable_releases_receive_their_assets_on_a_pushed_tag(workspace, github, webhooks, shared_cache):
    github.immutable_releases = True  # the repository setting: a published release cannot change
    payload = example(webhooks, "push", ref="refs/tags/simple-tag", deleted=False)
    run = run_action(workspace, github, "push", payload, **{"cache-dir": str(shared_cache)})
    assert run.returncode == 0, run.stdout + run.stderr
    (release,) = github.releases
    assert sorted(a["name"] for a in release["assets"]) == NAMES
    assert not release["draft"] and release["immutable"]
    create = json.loads(github.calls("POST", r".*/releases")[0].body)
    assert create["draft"] is True  # a draft first; published with a PATCH after the uploads
    (publish,) = github.calls("PATCH", r".*/releases/\d+")
    assert json.loads(publish.body)["draft"] is False
    assert github.requests.index(publish) > max(
        github.requests.index(r) for r in github.calls("POST", r"/api/uploads/.*")
    )


# --- manifests: forks, paths, names, archives


MANIFEST = '[[models]]\nname = "detector"\nmodel = "models/detector.onnx"\n'


def _fork(payload):
    payload["pull_request"]["head"]["repo"]["full_name"] = "forker/Hello-World"
    payload["pull_request"]["head"]["repo"]["fork"] = True
    return payload


@pytest.mark.parametrize("field", ["trust-pickle = true", 'model-class = "models.net:Net"'])
def test_fork_manifest_asking_for_code_is_refused_under_pull_request_target(workspace, github, webhooks, field):
    (workspace / "myriad-blob.toml").write_text(MANIFEST + field + "\n")
    payload = _fork(example(webhooks, "pull_request", action="opened"))
    run = run_action(workspace, github, "pull_request_target", payload, model="", manifest="myriad-blob.toml")
    assert run.returncode == 16, run.stdout + run.stderr
    asked = field.split(" ")[0]
    assert (
        f"refusing {asked} (asked by detector/default) for a fork's pull request under pull_request_target"
        in run.stdout
    )
    assert not (workspace / "blobs").exists()  # nothing was converted
    (comment,) = github.comments[2]  # pull_request_target's token can comment: the refusal is shown
    assert "refusing" in comment["body"]


def test_fork_model_class_is_refused_under_pull_request_target(workspace, github, webhooks):
    payload = _fork(example(webhooks, "pull_request", action="opened"))
    run = run_action(workspace, github, "pull_request_target", payload, **{"model-class": "models.net:Net"})
    assert run.returncode == 2, run.stdout + run.stderr
    assert "refusing model-class for a fork's pull request under pull_request_target" in run.stdout
    assert not (workspace / "detector.blob").exists()


@pytest.mark.parametrize("where", ["absolute", "dot-dot", "symlink"])
def test_manifest_paths_outside_the_workspace_are_refused(workspace, github, webhooks, where):
    secret = workspace.parent / "secret.onnx"
    secret.write_bytes((workspace / "models" / "detector.onnx").read_bytes())
    path = {"absolute": str(secret), "dot-dot": "models/../../secret.onnx", "symlink": "models/link.onnx"}[where]
    (workspace / "models" / "link.onnx").symlink_to(secret)
    (workspace / "myriad-blob.toml").write_text(MANIFEST.replace("models/detector.onnx", path))
    run = run_action(
        workspace,
        github,
        "push",
        example(webhooks, "push", ref="refs/heads/master"),
        model="",
        manifest="myriad-blob.toml",
    )
    assert run.returncode == 16, run.stdout + run.stderr
    assert "detector/default: model" in run.stdout and "is outside the workspace" in run.stdout
    assert not (workspace / "blobs").exists() and github.requests == []
    assert run.summary.startswith("## ❌ myriad-blob: invalid manifest\n\ndetector/default: model")


def test_manifest_sample_outside_the_workspace_is_refused(workspace, github, webhooks):
    (workspace / "myriad-blob.toml").write_text(MANIFEST + 'sample = "/etc/passwd"\n')
    run = run_action(
        workspace,
        github,
        "push",
        example(webhooks, "push", ref="refs/heads/master"),
        model="",
        manifest="myriad-blob.toml",
    )
    assert run.returncode == 16 and "detector/default: sample '/etc/passwd' is outside the workspace" in run.stdout


@pytest.mark.parametrize(
    "name, value",
    [
        ("model", "../secret.onnx"),
        ("model", "/etc/passwd"),
        ("manifest", "../myriad-blob.toml"),
        ("output", "../out.blob"),
    ],
)
def test_input_paths_outside_the_workspace_are_refused(workspace, github, webhooks, name, value):
    inputs = {name: value} if name != "manifest" else {"model": "", "manifest": value}
    run = run_action(workspace, github, "push", example(webhooks, "push", ref="refs/heads/master"), **inputs)
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"input {name} {value!r} is outside the workspace" in run.stdout


def test_output_through_a_symlink_out_of_the_workspace_is_refused(workspace, github, webhooks):
    (workspace / "out").symlink_to(workspace.parent)
    run = run_action(
        workspace, github, "push", example(webhooks, "push", ref="refs/heads/master"), output="out/detector.blob"
    )
    assert run.returncode == 2 and "input output 'out/detector.blob' is outside the workspace" in run.stdout
    assert not (workspace.parent / "detector.blob").exists()


def test_manifest_blob_names_that_collide_are_refused(workspace, github, webhooks):
    (workspace / "myriad-blob.toml").write_text(
        '[[models]]\nname = "a-b"\nmodel = "models/detector.onnx"\n[[models.variants]]\nname = "c"\n'
        '[[models]]\nname = "a"\nmodel = "models/detector.onnx"\n[[models.variants]]\nname = "b-c"\n'
    )
    run = run_action(
        workspace,
        github,
        "push",
        example(webhooks, "push", ref="refs/heads/master"),
        model="",
        manifest="myriad-blob.toml",
    )
    assert run.returncode == 16, run.stdout
    assert "a-b/c and a/b-c would both write blobs/a-b-c.blob" in run.stdout


def test_manifest_uploads_nn_archives_and_uses_cache_dir(workspace, github, webhooks):
    (workspace / "myriad-blob.toml").write_text(MANIFEST + "nn-archive = true\n")
    payload = example(webhooks, "release", action="published")
    github.add_release(payload["release"]["tag_name"], release_id=payload["release"]["id"])
    first = run_action(
        workspace,
        github,
        "release",
        payload,
        model="",
        manifest="myriad-blob.toml",
        **{"cache-dir": ".myriad-blob-cache"},
    )
    assert first.returncode == 0, first.stdout + first.stderr
    names = sorted(a["name"] for a in github.releases[0]["assets"])
    assert "detector-default.tar.xz" in names and "detector-default.blob" in names
    assert list((workspace / ".myriad-blob-cache").rglob("model.blob"))  # where actions/cache can keep it
    second = run_action(
        workspace,
        github,
        "release",
        payload,
        model="",
        manifest="myriad-blob.toml",
        **{"cache-dir": ".myriad-blob-cache"},
    )
    assert second.returncode == 0, second.stdout
    assert "1 from the cache" in second.summary


def test_cache_dir_input_for_one_model(workspace, github, webhooks):
    push = example(webhooks, "push", ref="refs/heads/master")
    assert run_action(workspace, github, "push", push, **{"cache-dir": "cache"}).returncode == 0
    run = run_action(workspace, github, "push", push, **{"cache-dir": "cache"})
    assert run.returncode == 0 and "from the cache" in run.summary, run.summary


# --- inputs


@pytest.mark.unit
def test_action_yml_declares_exactly_the_inputs_the_code_reads():
    read = set(
        re.findall(
            r'_(?:text|boolean|integer|number|lines)\("([a-z-]+)"', (ROOT / "entrypoint" / "inputs.py").read_text()
        )
    )
    read |= {option.name for option in OPTIONS if option.on("action") and option.key}  # read from the table
    assert set(ACTION["inputs"]) == read


def test_converter_inputs_reach_the_options(workspace, github, webhooks):
    run = run_action(workspace, github, "push", example(webhooks, "push", ref="refs/heads/master"), frontend="ov2023")
    assert run.returncode == 2 and "input frontend must be one of auto, ov2022, mo2021" in run.stdout
    run = run_action(
        workspace, github, "push", example(webhooks, "push", ref="refs/heads/master"), **{"compile-timeout": "soon"}
    )
    assert run.returncode == 2 and "input compile-timeout must be a number" in run.stdout
    run = run_action(workspace, github, "push", example(webhooks, "push", ref="refs/heads/master"), opset="twelve")
    assert run.returncode == 2 and "input opset must be a whole number" in run.stdout
    run = run_action(
        workspace,
        github,
        "push",
        example(webhooks, "push", ref="refs/heads/master"),
        frontend="mo2021",
        opset="13",
        **{"output-names": "scores", "compile-timeout": "300"},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    options = json.loads((workspace / "detector.blob.report.json").read_text())["options"]
    assert (options["frontend"], options["output_names"], options["compile_timeout"], options["opset"]) == (
        "mo2021",
        ["scores"],
        300.0,
        13,
    )


def test_what_a_dead_replacement_left_is_cleared(workspace, github, webhooks, shared_cache):
    event, payload = _asset_upload(github, webhooks)
    # A run that died between uploading under the temporary name and renaming, months ago.
    github.add_asset(
        github.releases[0],
        "myriad-blob-upload-0badc0de-detector.blob",
        b"half a replacement",
        created_at="2026-01-01T00:00:00Z",
    )
    # One made a minute ago may be another run's replacement in progress: left alone.
    github.add_asset(github.releases[0], "myriad-blob-upload-c0ffee00-detector.blob.report.md", b"in progress")
    run = run_action(workspace, github, event, payload, **{"cache-dir": str(shared_cache)})
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(a["name"] for a in github.releases[0]["assets"]) == sorted(
        NAMES + ["myriad-blob-upload-c0ffee00-detector.blob.report.md"]
    )


def test_a_yolo_best_pt_uploads_blob_archive_and_json(workspace, github, webhooks):
    """`model: runs/detect/train/weights/best.pt`, nothing else: the camera's files go to the release."""
    from yolo_checkpoints import best_pt

    best_pt(workspace, imgsz=160)
    payload = example(webhooks, "release", action="published")
    github.add_release(payload["release"]["tag_name"], release_id=payload["release"]["id"])
    for _run in range(2):  # the second from the cache, which keeps the JSON too
        result = run_action(
            workspace,
            github,
            "release",
            payload,
            model="runs/detect/train/weights/best.pt",
            **{"cache-dir": ".myriad-blob-cache"},
        )
        assert result.returncode == 0, result.stdout + result.stderr
        names = sorted(a["name"] for a in github.releases[0]["assets"])
        assert names == ["best.blob", "best.blob.report.json", "best.blob.report.md", "best.json", "best.tar.xz"]
    assert json.loads((workspace / "best.blob.report.json").read_text())["cache"]["hit"]


# --- the runner's files and variables, each of which may be missing


BROKEN = "models/broken.onnx"


@pytest.fixture
def broken(workspace):
    (workspace / BROKEN).write_text("not a model\n")
    return BROKEN


def _push(webhooks):
    return example(webhooks, "push", ref="refs/heads/master")


def _annotations(run, kind):
    return [line for line in run.stdout.splitlines() if line.startswith(f"::{kind} ")]


@pytest.mark.parametrize(
    "variable", ["GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "GITHUB_EVENT_PATH", "GITHUB_EVENT_NAME", "GITHUB_WORKSPACE"]
)
def test_a_missing_runner_variable_is_a_notice_and_the_exit_code_stands(workspace, github, webhooks, broken, variable):
    """GitHub Enterprise Server before step summaries, a container run by hand: a bad model still
    fails with its own exit code (10), one error annotation, and one notice naming what is missing."""
    run = run_action(
        workspace,
        github,
        "pull_request",
        example(webhooks, "pull_request", action="opened"),
        runner_env={variable: None},
        model=broken,
    )
    assert run.returncode == 10, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert len(_annotations(run, "error")) == 1 and "load failed" in _annotations(run, "error")[0]
    (notice,) = [line for line in _annotations(run, "notice") if variable in line]
    assert f"{variable} is not set" in notice


@pytest.mark.parametrize(
    "variable,problem",
    [
        ("GITHUB_STEP_SUMMARY", "a directory that is not there"),
        ("GITHUB_OUTPUT", "a directory that is not there"),
        ("GITHUB_EVENT_PATH", "a file that is not there"),
        ("GITHUB_EVENT_PATH", "a file that is not JSON"),
    ],
)
def test_a_runner_file_that_cannot_be_used_is_a_notice(workspace, github, webhooks, broken, variable, problem):
    """The variable is set, but its file-command directory was not mounted, or the event file is
    gone or damaged."""
    path = workspace.parent / "not-mounted" / "file"
    if problem == "a file that is not JSON":
        path = workspace.parent / "event-not-json"
        path.write_text("{ not json")
    payload = example(webhooks, "pull_request", action="opened")
    run = run_action(workspace, github, "pull_request", payload, runner_env={variable: str(path)}, model=broken)
    assert run.returncode == 10, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    (notice,) = [line for line in _annotations(run, "notice") if variable in line]
    assert f"names {path}" in notice
    if variable == "GITHUB_EVENT_PATH":
        assert github.requests == []  # no payload: no pull request to comment on
    else:
        assert len(github.comments[payload["number"]]) == 1  # the rest of the step went on


def test_without_any_runner_file_a_model_still_converts(workspace, github, webhooks):
    """A container run by hand (docker run -e INPUT_MODEL=... image): no runner variables at all."""
    missing = dict.fromkeys(
        [
            "GITHUB_STEP_SUMMARY",
            "GITHUB_OUTPUT",
            "GITHUB_EVENT_PATH",
            "GITHUB_EVENT_NAME",
            "GITHUB_WORKSPACE",
            "GITHUB_REPOSITORY",
            "GITHUB_API_URL",
            "GITHUB_ACTIONS",
            "GITHUB_REF",
        ]
    )
    run = run_action(workspace, github, "push", _push(webhooks), runner_env=missing)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (workspace / "detector.blob").stat().st_size > 0
    assert len(_annotations(run, "notice")) == 5 and not _annotations(run, "error")
    assert run.outputs == {} and run.summary == ""


@pytest.mark.skipif(bool(IMAGE), reason="injects a fault through PYTHONPATH, which the image does not take")
def test_an_internal_error_is_annotated_and_summarised(workspace, github, webhooks, tmp_path):
    """A bug of ours (here a fault injected in the converter's entry point, as no real input should
    reach one): exit 1, one error annotation, and a step summary saying it is a bug to report."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(
        "import myriad_blob.pipeline\n"
        "def convert(*args, **kwargs):\n"
        "    raise RuntimeError('injected fault')\n"
        "myriad_blob.pipeline.convert = convert\n"
    )
    run = run_action(
        workspace, github, "push", _push(webhooks), runner_env={"PYTHONPATH": os.pathsep.join([str(inject), str(ROOT)])}
    )
    assert run.returncode == 1, run.stdout + run.stderr
    (error,) = _annotations(run, "error")
    assert "internal error: RuntimeError('injected fault') (please report it)" in error
    assert run.summary.startswith(
        "## ❌ myriad-blob: internal error\n\n`internal error: RuntimeError('injected fault')`"
    )
    assert "please report it" in run.summary and "Exit code 1." in run.summary
    assert run.outputs["status"] == "failed"


def test_a_manifest_that_is_a_directory_is_an_invalid_manifest(workspace, github, webhooks):
    (workspace / "myriad-blob.toml").mkdir()
    run = run_action(workspace, github, "push", _push(webhooks), model="", manifest="myriad-blob.toml")
    assert run.returncode == 16, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert "cannot read myriad-blob.toml: Is a directory" in run.summary


def test_a_fatal_summary_quotes_the_manifest_and_the_error_as_text(workspace, github, webhooks, tmp_path):
    """The step summaries of an invalid manifest (a key the fork wrote) and of an internal error
    (an exception's text, which may quote the model) carry none of their Markdown."""
    key = json.dumps("x" + PAYLOAD)  # a TOML quoted key holds any string, a newline too
    (workspace / "myriad-blob.toml").write_text(f'[[models]]\nname = "a"\nmodel = "models/detector.onnx"\n{key} = 4\n')
    run = run_action(workspace, github, "push", _push(webhooks), model="", manifest="myriad-blob.toml")
    assert run.returncode == 16, run.stdout + run.stderr
    assert_safe(run.summary, headings=1)
    assert "is not an option" in run.summary

    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(
        "import myriad_blob.pipeline\n"
        "def convert(*args, **kwargs):\n"
        f"    raise RuntimeError({PAYLOAD!r})\n"
        "myriad_blob.pipeline.convert = convert\n"
    )
    run = run_action(
        workspace, github, "push", _push(webhooks), runner_env={"PYTHONPATH": os.pathsep.join([str(inject), str(ROOT)])}
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert_safe(run.summary, headings=1)
    assert "RuntimeError(" in run.summary
