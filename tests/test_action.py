"""The action's entrypoint run as GitHub runs it: INPUT_* variables, an event payload file (from
GitHub's published webhook examples), PATH set to nonsense, no HOME, and the real PyGithub client
over real HTTP against a local server answering the GitHub REST endpoints."""

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from github_api import FakeGitHub
from myriad_blob import toolchain

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "tests" / "node_modules" / "@octokit" / "webhooks-examples" / "api.github.com" / "index.json"
TOKEN = "ghs_TESTTOKEN1234567890abcdef"
REPO = "Codertocat/Hello-World"


@pytest.fixture(scope="module")
def webhooks():
    if not EXAMPLES.exists():
        pytest.fail(f"{EXAMPLES} is missing: run `make test` (it runs `npm ci --prefix tests`)")
    return {entry["name"]: entry["examples"] for entry in json.loads(EXAMPLES.read_text())}


def example(webhooks, event, **match):
    for payload in webhooks[event]:
        if all(payload.get(k) == v for k, v in match.items()):
            return copy.deepcopy(payload)
    raise LookupError(f"no {event} example with {match}")


@pytest.fixture
def github():
    server = FakeGitHub()
    yield server
    server.close()


@pytest.fixture
def workspace(tmp_path, model_files):
    root = tmp_path / "workspace"
    (root / "models").mkdir(parents=True)
    shutil.copy(model_files["onnx"], root / "models" / "detector.onnx")
    return root


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


def run_action(workspace, github, event_name, payload, **inputs):
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
    }
    defaults = {"model": "models/detector.onnx", "github-token": TOKEN, "comment-on-pr": "true",
                "upload-to-release": "true", "reverse-input-channels": "false", "trust-pickle": "false",
                "strict": "false"}
    for name, value in {**defaults, **inputs}.items():
        env[f"INPUT_{name.upper()}"] = value
    result = subprocess.run([sys.executable, "-P", "-m", "entrypoint"], cwd=workspace, env=env,
                            capture_output=True, text=True, timeout=600)
    outputs = parse_outputs((runner / "output").read_text()) if (runner / "output").exists() else {}
    summary = (runner / "summary.md").read_text() if (runner / "summary.md").exists() else ""
    # The token may appear only in the ::add-mask:: command, which the runner consumes and never shows.
    shown = [line for line in result.stdout.splitlines() if not line.startswith("::add-mask")]
    assert TOKEN not in "\n".join(shown) + result.stderr + summary + json.dumps(outputs)
    assert f"::add-mask ::{TOKEN}" in result.stdout or "github-token" not in str(inputs)
    return ActionRun(result, outputs, summary)


def test_pull_request_comment_is_created_then_edited_in_place(workspace, github, webhooks):
    payload = example(webhooks, "pull_request", action="opened")
    first = run_action(workspace, github, "pull_request", payload)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.outputs["comment-status"] == "created"
    assert first.outputs["status"] == "succeeded"
    assert first.outputs["blob-path"] == "detector.blob" and (workspace / "detector.blob").exists()
    assert len(first.outputs["blob-sha256"]) == 64 and int(first.outputs["blob-size"]) > 0
    assert first.outputs["report-path"] == "detector.blob.report.json"
    assert "✅ **Converted**" in first.summary
    (comment,) = github.comments[payload["number"]]
    assert comment["body"].startswith("<!-- myriad-blob report: models/detector.onnx -->")
    assert first.outputs["comment-url"] == comment["html_url"]
    assert all(r.authorization and TOKEN in r.authorization for r in github.requests)

    second = run_action(workspace, github, "pull_request", example(webhooks, "pull_request", action="synchronize"))
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.outputs["comment-status"] == "updated"
    assert len(github.calls("POST", r".*/issues/\d+/comments")) == 1
    assert len(github.calls("PATCH", r".*/issues/comments/\d+")) == 1
    assert len(github.comments[payload["number"]]) == 1


def test_each_model_gets_its_own_comment(workspace, github, webhooks, model_files):
    shutil.copy(model_files["torchscript"], workspace / "models" / "classifier.pt")
    payload = example(webhooks, "pull_request", action="opened")
    assert run_action(workspace, github, "pull_request", payload).returncode == 0
    run = run_action(workspace, github, "pull_request", payload, model="models/classifier.pt",
                     **{"input-shape": "[1, 3, 64, 80]"})
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
    uploads = [r.query["name"] for r in github.calls("POST", r"/api/uploads/.*")]
    assert uploads.count("detector.blob") == 1 and uploads.count("detector.blob.report.json") == 2
    assert len(github.calls("DELETE", r".*/releases/assets/\d+")) == 2


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


def test_a_502_is_retried(workspace, github, webhooks):
    github.fail_next.append(("POST", r".*/issues/\d+/comments", 502, {"message": "Server Error"}))
    run = run_action(workspace, github, "pull_request", example(webhooks, "pull_request", action="opened"))
    assert run.returncode == 0, run.stdout
    assert len(github.calls("POST", r".*/issues/\d+/comments")) == 2
    assert run.outputs["comment-status"] == "created" and len(github.comments[2]) == 1


def test_upload_race_already_exists_is_handled_once(workspace, github, webhooks):
    payload = example(webhooks, "release", action="published")
    github.add_release(payload["release"]["tag_name"], release_id=payload["release"]["id"])
    github.fail_next.append(("POST", r"/api/uploads/.*", 422, {"message": "Validation Failed", "errors": [
        {"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}]}))
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
    assert "::error title=myriad-blob%3A publishing failed::could not comment on pull request #2: GitHub did not " \
           "answer after retries (too many 503 error responses)" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr


def test_failed_conversion_is_annotated_and_still_reported(workspace, github, webhooks):
    (workspace / "models" / "broken.onnx").write_text("not a model\n")
    run = run_action(workspace, github, "pull_request", example(webhooks, "pull_request", action="opened"),
                     model="models/broken.onnx")
    assert run.returncode == 10
    assert "::error title=myriad-blob%3A load failed,file=models/broken.onnx::" in run.stdout
    assert run.outputs["status"] == "failed" and run.outputs["blob-path"] == ""
    (comment,) = github.comments[2]
    assert "❌ **Failed** at stage `load`" in comment["body"]


def test_inputs_are_validated(workspace, github, webhooks):
    run = run_action(workspace, github, "pull_request", example(webhooks, "pull_request", action="opened"),
                     **{"comment-on-pr": "yes"})
    assert run.returncode == 2
    assert "input comment-on-pr must be true or false" in run.stdout
    run = run_action(workspace, github, "pull_request", example(webhooks, "pull_request", action="opened"),
                     nshaves="six")
    assert run.returncode == 2 and "input nshaves must be a whole number" in run.stdout
    assert github.requests == []


@pytest.mark.skipif(os.geteuid() != 0, reason="changing file owners needs root, as in the container")
def test_files_are_given_back_to_the_workspace_owner(workspace, github, webhooks):
    for path in [workspace, *workspace.rglob("*")]:
        os.chown(path, 1234, 1234)
    run = run_action(workspace, github, "push", example(webhooks, "push", ref="refs/heads/master"),
                     output="out/blobs/detector.blob")
    assert run.returncode == 0, run.stdout
    for path in ["out", "out/blobs", "out/blobs/detector.blob", "out/blobs/detector.blob.report.json",
                 "out/blobs/detector.blob.report.md"]:
        stat = (workspace / path).stat()
        assert (stat.st_uid, stat.st_gid) == (1234, 1234), path


def test_manifest_converts_every_variant_with_one_comment_and_one_upload(workspace, github, webhooks):
    (workspace / "myriad-blob.toml").write_text(
        '[[models]]\nname = "detector"\nmodel = "models/detector.onnx"\n'
        '[[models.variants]]\nname = "six"\n[[models.variants]]\nname = "four"\nnshaves = 4\n')
    run = run_action(workspace, github, "pull_request", example(webhooks, "pull_request", action="opened"),
                     model="", manifest="myriad-blob.toml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.outputs["status"] == "succeeded" and run.outputs["report-path"] == "blobs/batch-report.json"
    (comment,) = github.comments[2]
    assert "2 of 2 variants converted" in comment["body"] and "`detector/four`" in comment["body"]

    payload = example(webhooks, "release", action="published")
    github.add_release(payload["release"]["tag_name"], release_id=payload["release"]["id"])
    run = run_action(workspace, github, "release", payload, model="", manifest="myriad-blob.toml")
    assert run.returncode == 0, run.stdout
    names = sorted(a["name"] for a in github.releases[0]["assets"])
    assert names == sorted(["detector-six.blob", "detector-six.blob.report.json", "detector-six.blob.report.md",
                            "detector-four.blob", "detector-four.blob.report.json", "detector-four.blob.report.md",
                            "batch-report.json", "batch-report.md"])


def test_model_and_manifest_together_are_refused(workspace, github, webhooks):
    run = run_action(workspace, github, "pull_request", example(webhooks, "pull_request", action="opened"),
                     manifest="myriad-blob.toml")
    assert run.returncode == 2 and "give exactly one of the inputs model" in run.stdout
