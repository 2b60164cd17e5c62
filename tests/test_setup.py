"""The toolchain set-up names what is missing instead of failing obscurely."""

import os
import shutil
import subprocess

import pytest

from myriad_blob.toolchain import SETUP_SCRIPT

pytestmark = pytest.mark.unit


def run_setup(tmp_path, env):
    return subprocess.run(
        ["bash", str(SETUP_SCRIPT), str(tmp_path / "toolchain")], capture_output=True, text=True, env=env, timeout=60
    )


def test_setup_names_a_missing_legacy_interpreter(tmp_path):
    env = dict(os.environ, MYRIAD_BLOB_LEGACY_PYTHON=str(tmp_path / "python3.8"))
    result = run_setup(tmp_path, env)
    assert result.returncode == 1
    assert "MYRIAD_BLOB_LEGACY_PYTHON" in result.stderr and "is not an executable" in result.stderr
    assert not (tmp_path / "toolchain" / "toolchain.json").exists()


def test_setup_names_a_missing_compiler(tmp_path):
    # A PATH with the basic tools but no g++.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "ldconfig", "grep", "cat", "sha256sum", "cut", "head", "ls", "sort"):
        found = shutil.which(tool, path=os.environ["PATH"] + ":/sbin:/usr/sbin")
        if found:
            (bin_dir / tool).symlink_to(found)
    result = run_setup(tmp_path, dict(os.environ, PATH=str(bin_dir)))
    assert result.returncode == 1
    assert "g++ not found" in result.stderr and "apt-get install g++" in result.stderr


def test_setup_never_deletes_a_directory_that_is_not_a_toolchain(tmp_path):
    """`myriad-blob setup --dir D` replaces D only when D is new, empty or an earlier set-up's."""
    target = tmp_path / "toolchain"
    target.mkdir()
    (target / "thesis.tex").write_text("years of work")
    result = run_setup(tmp_path, dict(os.environ))
    assert result.returncode == 1
    assert "is not empty and holds no myriad-blob toolchain" in result.stderr and "nothing was deleted" in result.stderr
    assert (target / "thesis.tex").read_text() == "years of work"
