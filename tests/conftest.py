import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))
sys.path.insert(1, str(TESTS.parent / "tools"))  # the tools that run whole conversions (op_sweep, onnx_suite)
import models  # noqa: E402
from myriad_blob import toolchain as toolchain_module  # noqa: E402
from myriad_blob.pipeline import Conversion, Session  # noqa: E402
from myriad_blob.report import ConversionReport  # noqa: E402

SHAPE = [1, 3, 64, 80]
SHAPE_ARG = "[1, 3, 64, 80]"


# Every test is one of two kinds (pyproject.toml registers the markers; --strict-markers):
#   unit        no toolchain, seconds: `pytest -m unit` (or `make test-unit`) runs them anywhere
#   conversion  runs the legacy Myriad toolchain (real conversions); the run stops if it is not set up
# A test marked neither is a conversion test, so a new test never reaches `-m unit` by accident.
@pytest.hookimpl(tryfirst=True)  # before -m selects
def pytest_collection_modifyitems(config, items):
    both = [item.nodeid for item in items if item.get_closest_marker("unit") and item.get_closest_marker("conversion")]
    if both:
        raise pytest.UsageError("tests marked both unit and conversion: " + ", ".join(both))
    for item in items:
        if not item.get_closest_marker("unit"):
            item.add_marker(pytest.mark.conversion)


def pytest_collection_finish(session):
    """The whole run stops at once when a selected conversion test would find no toolchain."""
    if not session.config.option.collectonly and any(item.get_closest_marker("conversion") for item in session.items):
        from myriad_blob import toolchain

        manifest = toolchain.default_dir() / "toolchain.json"
        if not manifest.exists():
            pytest.exit(
                f"the Myriad toolchain is not set up in {manifest.parent}: run `make test` (it sets it up), "
                "or `pytest -m unit` for the tests that need none",
                3,
            )


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Each test starts with an empty blob cache, so conversions really convert unless a test
    is about the cache (subprocesses inherit the variable)."""
    monkeypatch.setenv("MYRIAD_BLOB_CACHE_DIR", str(tmp_path / "blob-cache"))
    return tmp_path / "blob-cache"


def _small_cnn():
    torch.manual_seed(0)
    return models.SmallCNN().eval()


@pytest.fixture(scope="session")
def model_files(tmp_path_factory):
    """Every accepted model format, saved from the same SmallCNN weights; names hide the format."""
    root = tmp_path_factory.mktemp("models")
    model = _small_cnn()
    sample = torch.zeros(SHAPE)
    files = {}
    files["torchscript"] = root / "ts.bin"
    torch.jit.save(torch.jit.trace(model, sample), str(files["torchscript"]))
    files["torch.export"] = root / "exported.pt2"
    torch.export.save(torch.export.export(model, (sample,)), str(files["torch.export"]))
    files["state-dict"] = root / "weights.pth"
    torch.save(model.state_dict(), files["state-dict"])
    files["checkpoint"] = root / "checkpoint.ckpt"
    torch.save({"model": model.state_dict(), "epoch": 7, "lr": 0.01}, files["checkpoint"])
    files["full-model pickle"] = root / "full.pt"
    torch.save(model, files["full-model pickle"])
    files["onnx"] = root / "model.onnx"
    torch.onnx.export(
        model,
        (sample,),
        str(files["onnx"]),
        opset_version=12,
        dynamo=False,
        input_names=["input"],
        output_names=["scores"],
    )
    return files


def run_cli(*args, cwd=None, env_extra=None):
    """Run `myriad-blob` as a user would, in a subprocess (real exit codes, real stderr)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "myriad_blob.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


CASES = TESTS.resolve().parents[1] / "shared" / "cases"


@pytest.fixture(scope="session")
def cases(tmp_path_factory):
    """The models of ../shared/cases (small models that reproduce failures users reported), built
    once by their own builders: their files in one directory."""
    import shutil

    if not CASES.is_dir():
        pytest.fail(f"{CASES} is not here: the project is checked out with ../shared beside it (as CI does)")
    directory = tmp_path_factory.mktemp("cases")
    for builder in CASES.glob("*.py"):
        shutil.copy(builder, directory)
    for builder in sorted(directory.glob("case*.py")):
        subprocess.run([sys.executable, builder.name], cwd=directory, check=True, capture_output=True)
    return directory


# GitHub's published webhook payloads (npm @octokit/webhooks-examples): the action tests' events.
WEBHOOK_EXAMPLES = TESTS / "node_modules" / "@octokit" / "webhooks-examples" / "api.github.com" / "index.json"


@pytest.fixture(scope="module")
def webhooks():
    import json

    if not WEBHOOK_EXAMPLES.exists():
        pytest.fail(f"{WEBHOOK_EXAMPLES} is missing: run `make test` (it runs `npm ci --prefix tests`)")
    return {entry["name"]: entry["examples"] for entry in json.loads(WEBHOOK_EXAMPLES.read_text())}


# The action's tests (test_action.py, test_action_security.py): a local GitHub API and a workspace
# holding one ONNX model.
@pytest.fixture
def github():
    from github_api import FakeGitHub

    server = FakeGitHub()
    yield server
    server.close()


@pytest.fixture
def workspace(tmp_path, model_files):
    root = tmp_path / "workspace"
    (root / "models").mkdir(parents=True)
    shutil.copy(model_files["onnx"], root / "models" / "detector.onnx")
    return root


def make_ir(options, workdir: Path):
    """(toolchain, loaded model, PreparedOnnx, IRModel) for options, made by the pipeline's own
    stages (pipeline.Conversion: load, export, IR), for tests that check what comes after."""
    toolchain = toolchain_module.locate()
    conversion = Conversion(options, toolchain, ConversionReport(options.to_dict()), Session(workdir), workdir)
    loaded = conversion.load()
    ir, prepared = conversion.make_ir(conversion.export(loaded))
    return toolchain, loaded, prepared, ir
