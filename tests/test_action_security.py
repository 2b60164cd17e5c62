"""The action against a hostile pull request (#24): model code never holds the token, nothing is
written through a committed symlink, a fork's code-bearing model is refused under
pull_request_target before it is loaded. Each test detects the exploit by its side effect (a
file the payload writes, a file outside the workspace replaced, a secret in the comment)."""

import base64
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from test_action import TOKEN, _fork, example, run_action
from test_hostile_files import Calls

PUSH = {"ref": "refs/heads/master"}


# What a trusted pickle's code could do: read every environment within reach, and leave it in the workspace.
SNOOP = """
import os
found = []
pids = [name for name in os.listdir("/proc") if name.isdigit()]
for path in ["/proc/self/environ", "/proc/%d/environ" % os.getppid()] + ["/proc/%s/environ" % p for p in pids]:
    try:
        found.append(path + ": " + open(path, "rb").read().decode("latin1"))
    except OSError as error:
        found.append(path + ": " + str(error))
found.append(repr(dict(os.environ)))
open(os.path.join(os.getcwd(), "leak.txt"), "w").write("\\n".join(found))
"""


def _run_trusted_code(workspace, github, webhooks, code: str):
    """The action on a push, converting a full-model pickle it trusts (trust-pickle) that runs `code`."""
    torch.save(Calls(exec, code), workspace / "models" / "trusted.pt")
    return run_action(
        workspace,
        github,
        "push",
        example(webhooks, "push", **PUSH),
        model="models/trusted.pt",
        **{"trust-pickle": "true", "input-shape": "[1, 3, 8, 8]"},
    )


def test_model_code_never_holds_the_token(workspace, github, webhooks):
    """A full-model pickle the repository trusts (trust-pickle: true on a push) runs its code in
    a child that has no token in its environment and cannot read ours. Before: the token was in
    /proc/self/environ of the process that loaded the model."""
    run = _run_trusted_code(workspace, github, webhooks, SNOOP)
    leak = (workspace / "leak.txt").read_text()  # the code ran: what did it see?
    assert run.returncode == 10, run.stdout + run.stderr  # it is no model, after all
    assert TOKEN not in leak
    assert leak.startswith("/proc/self/environ: ")


class ReadsAFile(torch.nn.Module):
    """TorchScript that reads a file of the checkout and raises an error holding its bytes."""

    def forward(self, x):
        data = torch.from_file(".git/config", shared=False, size=150, dtype=torch.uint8)
        text = ""
        for i in range(150):
            text += chr(int(data[i]))
        if bool(x.sum() > -1e9):
            raise RuntimeError("config: " + text.replace("\n", " "))
        return x


def _checkout_credentials(workspace):
    """What actions/checkout leaves in .git/config with persist-credentials (its default)."""
    header = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    (workspace / ".git").mkdir()
    (workspace / ".git" / "config").write_text(
        f'[http "https://github.com/"]\n\textraheader = AUTHORIZATION: basic {header}\n' + "#" * 200
    )
    torch.jit.script(ReadsAFile()).save(str(workspace / "models" / "reader.pt"))
    return header


def test_a_forks_torchscript_is_refused_under_pull_request_target(workspace, github, webhooks):
    """TorchScript runs code when exported: a fork's is refused before loading. Before: it
    converted, and its error put the checkout's credentials into the comment."""
    header = _checkout_credentials(workspace)
    payload = _fork(example(webhooks, "pull_request", action="opened"))
    run = run_action(
        workspace, github, "pull_request_target", payload, model="models/reader.pt", **{"input-shape": "[1, 3, 8, 8]"}
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert "refusing the torchscript models/reader.pt for a fork's pull request under pull_request_target" in run.stdout
    (comment,) = github.comments[2]
    assert "only ONNX converts here" in comment["body"]
    assert header not in comment["body"] and "extraheader" not in comment["body"]


def _hostile_models(workspace):
    """Each code-bearing kind, whose loading would write pwned.txt into the workspace: a best.pt
    calling AutoBackend on a payload pickle, a full-model pickle, a .pt2 with a pickled weight."""
    from ultralytics.nn.autobackend import AutoBackend

    models = workspace / "models"
    marker = workspace / "pwned.txt"
    torch.save({"model": Calls(exec, f"open({str(marker)!r}, 'w').write('pwned')")}, models / "payload.pt")
    torch.save({"model": None, "ema": Calls(AutoBackend, str(models / "payload.pt"))}, models / "best.pt")
    torch.save(Calls(exec, f"open({str(marker)!r}, 'w').write('pwned')"), models / "pickle.pt")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    torch.export.save(torch.export.export(model, (torch.randn(1, 3, 8, 8),)), models / "program.pt2")
    return marker


@pytest.mark.parametrize("model", ["best.pt", "pickle.pt", "program.pt2"])
@pytest.mark.parametrize("where", ["inputs", "manifest"])
def test_a_forks_code_bearing_model_is_refused_before_loading(workspace, github, webhooks, model, where):
    """Under pull_request_target a fork converts ONNX only: a best.pt, a pickle, a .pt2 are
    refused from the inputs and from a manifest alike, and nothing of them runs."""
    marker = _hostile_models(workspace)
    payload = _fork(example(webhooks, "pull_request", action="opened"))
    if where == "inputs":
        run = run_action(
            workspace,
            github,
            "pull_request_target",
            payload,
            model=f"models/{model}",
            **{"input-shape": "[1, 3, 8, 8]"},
        )
        assert run.returncode == 2, run.stdout + run.stderr
    else:
        (workspace / "myriad-blob.toml").write_text(
            f'[[models]]\nname = "m"\nmodel = "models/{model}"\ninput-shape = "[1, 3, 8, 8]"\n'
        )
        run = run_action(workspace, github, "pull_request_target", payload, model="", manifest="myriad-blob.toml")
        assert run.returncode == 16, run.stdout + run.stderr
    assert f"models/{model}" in run.stdout and "only ONNX converts here" in run.stdout
    assert not marker.exists()


def test_what_model_code_read_is_not_published_with_the_token(workspace, github, webhooks):
    """Where a model's code runs (a same-repository pull request), a secret it read from the
    checkout is masked in the comment and the summary, as GitHub masks it in logs."""
    header = _checkout_credentials(workspace)
    payload = example(webhooks, "pull_request", action="opened")
    run = run_action(
        workspace, github, "pull_request", payload, model="models/reader.pt", **{"input-shape": "[1, 3, 8, 8]"}
    )
    assert run.returncode == 11, run.stdout + run.stderr
    (comment,) = github.comments[2]
    assert "extraheader" in comment["body"]  # the error was quoted...
    assert header not in comment["body"] and header not in run.summary  # ...but not the secret
    assert "AUTHORIZATION: basic ***" in comment["body"]


def test_committed_symlinks_are_never_written_through(workspace, github, webhooks, tmp_path):
    """A pull request commits `detector.blob` and `detector.blob.report.md` as links out of the
    workspace. Before: the files they point at were replaced."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for name in ("blob", "report.md"):
        (outside / name).write_text("precious")
    (workspace / "detector.blob").symlink_to(outside / "blob")
    (workspace / "detector.blob.report.md").symlink_to(outside / "report.md")
    run = run_action(workspace, github, "push", example(webhooks, "push", **PUSH))
    assert [(outside / name).read_text() for name in ("blob", "report.md")] == ["precious", "precious"]
    assert run.returncode == 15, run.stdout + run.stderr
    assert "is a symbolic link, which the action never writes through" in run.stdout


def test_a_manifest_variants_symlinked_blob_is_not_written_through(workspace, github, webhooks, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "victim").write_text("precious")
    (workspace / "myriad-blob.toml").write_text('[[models]]\nname = "detector"\nmodel = "models/detector.onnx"\n')
    (workspace / "blobs").mkdir()
    (workspace / "blobs" / "detector-default.blob").symlink_to(outside / "victim")
    run = run_action(
        workspace, github, "push", example(webhooks, "push", **PUSH), model="", manifest="myriad-blob.toml"
    )
    assert (outside / "victim").read_text() == "precious"
    assert run.returncode == 17, run.stdout + run.stderr


# The safe pattern for forks: `pull_request` converts (read-only token), `workflow_run` comments.
FORK_SHA = "c0ffee" * 6 + "beef"


def _workflow_run(webhooks):
    payload = example(webhooks, "workflow_run", action="completed")
    run = payload["workflow_run"]
    run.update(event="pull_request", head_branch="patch-1", head_sha=FORK_SHA, pull_requests=[])
    run["head_repository"]["owner"]["login"] = "forker"
    run["head_repository"]["full_name"] = "forker/Hello-World"
    payload["repository"]["full_name"] = "Codertocat/Hello-World"
    return payload


def _convert_in_pull_request(workspace, github, webhooks, **inputs):
    """The first workflow: a fork's pull request converts; its report is the artifact."""
    run = run_action(
        workspace, github, "pull_request", _fork(example(webhooks, "pull_request", action="opened")), **inputs
    )
    assert run.outputs["comment-status"] == "skipped-fork"
    return workspace / run.outputs["report-path"]


def test_pull_request_then_workflow_run_keeps_one_comment(workspace, github, webhooks, tmp_path):
    """The first run converts with a read-only token (no comment for a fork); the second, on
    workflow_run, comments the downloaded report on the pull request GitHub names for the run's
    head, and edits the same comment on the next push."""
    github.add_pull(2, "forker", "patch-1", FORK_SHA)
    github.add_pull(3, "forker", "other-branch", "1" * 40)  # another of the fork's pull requests
    second = tmp_path / "second"
    (second / "artifact").mkdir(parents=True)
    statuses = []
    for inputs in ({}, {"reverse-input-channels": "true"}):  # two pushes to the pull request
        report = _convert_in_pull_request(workspace, github, webhooks, **inputs)
        (second / "artifact" / "report.json").write_bytes(report.read_bytes())
        run = run_action(
            second,
            github,
            "workflow_run",
            _workflow_run(webhooks),
            model="",
            **{"comment-from": "artifact/report.json"},
        )
        assert run.returncode == 0, run.stdout + run.stderr
        statuses.append(run.outputs["comment-status"])
    assert statuses == ["created", "updated"]
    assert 3 not in github.comments
    (comment,) = github.comments[2]
    assert comment["body"].startswith("<!-- myriad-blob report: models/detector.onnx -->")
    assert "Converted by this pull request's own workflow run" in comment["body"]
    assert "✅ **Converted**" in comment["body"]
    assert not github.calls("POST", r".*/releases.*")


def test_workflow_run_loads_no_model_and_takes_the_report_as_data(workspace, github, webhooks, tmp_path):
    """The artifact is the pull request's: a report whose strings carry Markdown is rendered
    escaped, and a file that is no report is refused (exit 2), never loaded as a model."""
    from hostile_markdown import PAYLOAD, assert_safe

    github.add_pull(2, "forker", "patch-1", FORK_SHA)
    report = json.loads(_convert_in_pull_request(workspace, github, webhooks).read_text())
    report["options"]["input"] = PAYLOAD
    report["warnings"] = [PAYLOAD]
    second = tmp_path / "second"
    second.mkdir()
    (second / "report.json").write_text(json.dumps(report))
    run = run_action(
        second, github, "workflow_run", _workflow_run(webhooks), model="", **{"comment-from": "report.json"}
    )
    assert run.returncode == 0, run.stdout + run.stderr
    (comment,) = github.comments[2]
    assert_safe(comment["body"], comments=1)  # our own marker is the one HTML comment

    torch.save({"model": Calls(exec, "open('pwned.txt', 'w')")}, second / "model.pt")
    run = run_action(second, github, "workflow_run", _workflow_run(webhooks), model="", **{"comment-from": "model.pt"})
    assert run.returncode == 2, run.stdout + run.stderr
    assert "is not a myriad-blob report" in run.stdout
    assert not (second / "pwned.txt").exists()


# Trusted code that leaves the parent its own "internal error", quoting the checkout's credentials.
FAKE_FAILURE = """
import os
config = open(".git/config").read().replace("\\n", " ")
open(os.path.join(os.environ["MYRIAD_BLOB_CHILD_DIR"], "outcome.json"), "w").write("internal error: " + config)
os._exit(0)
"""


def test_a_child_that_fails_with_a_secret_does_not_publish_it(workspace, github, webhooks):
    """The child's "internal error" text is the model's when its code ran: it goes to the step
    summary masked, like a report. Before: the token's base64 form went into the summary as is."""
    header = _checkout_credentials(workspace)
    run = _run_trusted_code(workspace, github, webhooks, FAKE_FAILURE)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "extraheader" in run.summary  # the text was quoted...
    assert header not in run.summary  # ...but not the secret


@pytest.mark.unit
@pytest.mark.skipif(os.geteuid() != 0, reason="changing uid needs root, as in the container")
def test_the_dropped_child_has_no_group_of_the_runner_and_leaves_nothing_running(tmp_path):
    """As root with the workspace the runner's (uid 1001, group docker on GitHub's runners): the
    child takes the owner's uid but group nogroup, and what it leaves running is killed after."""
    from entrypoint import isolation

    workspace = tmp_path / "workspace"
    workspace.mkdir()
    os.chown(workspace, 4321, 999)  # 999: a group such as docker, which opens the Docker socket
    identity = isolation.child_identity(workspace, [Path("/bin/sleep")])
    assert identity == (4321, isolation.NOGROUP)
    left = subprocess.Popen(["/bin/sleep", "60"], preexec_fn=lambda: (os.setgid(isolation.NOGROUP), os.setuid(4321)))
    code = isolation.run_child(["/bin/sh", "-c", "id -G > /dev/null"], dict(os.environ), identity)
    assert code == 0
    assert left.wait(timeout=10) == -signal.SIGKILL  # the left-behind process of that uid


def test_a_forks_code_is_refused_under_workflow_run_too(workspace, github, webhooks):
    """A workflow_run workflow that checks out a fork's head and converts (not comment-from) has a
    token that can write: the same ONNX-only rule as pull_request_target."""
    marker = _hostile_models(workspace)
    run = run_action(workspace, github, "workflow_run", _workflow_run(webhooks), model="models/best.pt")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "for a fork's pull request under workflow_run" in run.stdout and "only ONNX converts here" in run.stdout
    assert not marker.exists()
