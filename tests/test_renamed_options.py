"""A renamed option keeps its old name for a while (Option.renamed_from): the CLI takes the old flag
with a deprecation warning, the manifest the old field, the action the old input, and action.yml
declares the old input with a deprecationMessage. No option has been renamed yet, so the example is
a made-up one: --nshaves as it would be had it been called --shaves before."""

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from myriad_blob import cli, manifest
from myriad_blob.options import ACTION, BY_NAME, OPTIONS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("sync_options", ROOT / "scripts" / "sync_options.py")
sync = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sync)

NSHAVES = dataclasses.replace(BY_NAME["nshaves"], renamed_from=("shaves",))
SWITCH = next(o for o in OPTIONS if o.kind == "switch")
RENAMED_SWITCH = dataclasses.replace(SWITCH, renamed_from=("old-" + SWITCH.name,))
TABLE = tuple(NSHAVES if o.name == "nshaves" else RENAMED_SWITCH if o is SWITCH else o for o in OPTIONS)


def _command():
    seen = {}

    def command(**values):
        seen.update(values)

    return click.command()(cli._cli_options(command, TABLE)), seen


def test_the_old_flag_stands_for_the_new_one_with_a_warning():
    command, seen = _command()
    result = CliRunner().invoke(command, ["--input", "m.onnx", "--shaves", "4", f"--no-old-{SWITCH.name}"])
    assert result.exit_code == 0, result.output
    assert seen["nshaves"] == 4 and seen[SWITCH.key] is False
    assert not any(key.startswith("renamed__") for key in seen)
    assert (
        "myriad-blob: warning: --shaves is deprecated: it was renamed --nshaves (same meaning); use --nshaves"
        in result.stderr
    )
    assert "--shaves" not in CliRunner().invoke(command, ["--help"]).output  # hidden


def test_the_new_flag_alone_warns_nothing_and_both_are_refused():
    command, seen = _command()
    result = CliRunner().invoke(command, ["--input", "m.onnx", "--nshaves", "5"])
    assert result.exit_code == 0 and seen["nshaves"] == 5 and "deprecated" not in result.stderr
    both = CliRunner().invoke(command, ["--input", "m.onnx", "--nshaves", "5", "--shaves", "4"])
    assert both.exit_code == 2 and "--shaves and --nshaves are one option (renamed): give --nshaves only" in both.stderr


def test_action_yml_declares_the_old_input_with_a_deprecation_message(tmp_path):
    inputs = yaml.safe_load(sync.action_inputs(TABLE))["inputs"]
    names = list(inputs)
    assert names[names.index("nshaves") + 1] == "shaves"
    assert inputs["shaves"] == {
        "description": "Deprecated: use nshaves.",
        "required": False,
        "deprecationMessage": "shaves is deprecated: it was renamed nshaves (same meaning); use nshaves.",
    }
    assert "default" not in inputs["shaves"]  # set means given (entrypoint/inputs.py)
    action_yml = (ROOT / "action.yml").read_text()
    (tmp_path / "action.yml").write_text(sync.splice_inputs(action_yml, sync.action_inputs(TABLE)))
    schema = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-actions",
            str(tmp_path / "action.yml"),
        ],
        capture_output=True,
        text=True,
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr
    assert "| `--shaves` | | deprecated: the name of `--nshaves` before a rename |" in sync.cli_table(TABLE)
    assert "| `shaves` | | deprecated: the name of `nshaves` before a rename |" in sync.action_table(TABLE)


def test_the_manifest_reads_the_old_field_with_a_warning(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(manifest.RENAMED, "shaves", NSHAVES)
    path = tmp_path / "myriad-blob.toml"
    path.write_text('[[models]]\nname = "m"\nmodel = "m.onnx"\nshaves = 4\nnslices = 4\n')
    (variant,) = manifest.load_manifest(path)
    assert variant.options.nshaves == 4
    assert (
        "myriad-blob: warning: models[0].shaves: shaves is deprecated: it was renamed nshaves"
        in capsys.readouterr().err
    )
    path.write_text('[[models]]\nname = "m"\nmodel = "m.onnx"\nshaves = 4\nnshaves = 4\n')
    with pytest.raises(manifest.ManifestError, match=r":4: models\[0\].shaves and nshaves are one field"):
        manifest.load_manifest(path)


def test_the_action_reads_the_old_input_when_it_is_set(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT))
    from entrypoint import inputs

    assert inputs._input_name(NSHAVES) == "nshaves"
    monkeypatch.setenv("INPUT_SHAVES", "4")
    assert inputs._input_name(NSHAVES) == "shaves"
    assert "a renamed input::shaves is deprecated: it was renamed nshaves" in capsys.readouterr().out
    assert ACTION in NSHAVES.surfaces


def test_any_description_reads_back_from_action_yml():
    """action.yml is written as text: a help with ': ', quotes or a leading indicator is quoted."""
    texts = ["Names (empty: the dict's keys)", "'quoted' and # not a comment", "- a dash first", "plain text", "12"]
    table = tuple(
        dataclasses.replace(NSHAVES, name=f"x{i}", action_help=text, renamed_from=()) for i, text in enumerate(texts)
    )
    inputs = yaml.safe_load(sync.action_inputs(table))["inputs"]
    assert [inputs[f"x{i}"]["description"] for i in range(len(texts))] == texts
