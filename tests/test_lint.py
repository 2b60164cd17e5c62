"""The action's files and the Python, linted with third-party tools from PyPI, and kept consistent with each other."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from myriad_blob.options import ACTION, OPTIONS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def run(*args):
    return subprocess.run([str(BIN / args[0]), *map(str, args[1:])], capture_output=True, text=True, cwd=ROOT)


def test_actionlint_on_the_workflows():
    result = run("actionlint", *WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "schema, files", [("vendor.github-workflows", WORKFLOWS), ("vendor.github-actions", [str(ROOT / "action.yml")])]
)
def test_github_schemas(schema, files):
    result = run("check-jsonschema", "--builtin-schema", schema, *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_high():
    result = run("zizmor", "--offline", "--min-severity", "high", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_on_the_dockerfile():
    result = run("hadolint", "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_on_the_python():
    """src/, tests/, entrypoint/, scripts/, bench/, examples/: the rules in pyproject.toml's [tool.ruff]."""
    result = run("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_on_the_python():
    """The tree is formatted by `ruff format` (pyproject.toml's [tool.ruff.format]); run it before committing."""
    result = run("ruff", "format", "--check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_action_inputs_outputs_code_and_readme_agree():
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    readme = (ROOT / "README.md").read_text()
    read = set(
        re.findall(
            r'_(?:text|boolean|integer|number|lines)\("([a-z-]+)"', (ROOT / "entrypoint" / "inputs.py").read_text()
        )
    )
    read |= {
        name for option in OPTIONS if option.on(ACTION) and option.key for name in (option.name, *option.renamed_from)
    }  # read from the table
    assert set(action["inputs"]) <= read, "inputs the entrypoint never reads"
    main = (ROOT / "entrypoint" / "__main__.py").read_text()
    calls = re.findall(r"(?:set_outputs|outputs = dict)\(([^)]*)\)", main, re.S)
    written = {name.replace("_", "-") for name in re.findall(r"\b([a-z0-9_]+)=", " ".join(calls))}
    assert written == set(action["outputs"]), "outputs set but not declared, or declared but never set"
    for name in [*action["inputs"], *action["outputs"]]:
        assert f"`{name}`" in readme, f"{name} is not documented in the README"
    assert action["runs"] == {"using": "docker", "image": "Dockerfile"}


def test_pin_action_image(tmp_path):
    copy = tmp_path / "action.yml"
    shutil.copy(ROOT / "action.yml", copy)
    image = "docker://ghcr.io/owner/myriad-blob@sha256:" + "a" * 64
    subprocess.run([sys.executable, str(ROOT / "scripts" / "pin_action_image.py"), str(copy), image], check=True)
    assert yaml.safe_load(copy.read_text())["runs"] == {"using": "docker", "image": image}
    bad = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "pin_action_image.py"),
            str(copy),
            "docker://ghcr.io/owner/myriad-blob:latest",
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "not an image pinned by digest" in bad.stderr
