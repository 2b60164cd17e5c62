"""The toolchain package's layout: the scripts that run under the toolchain's own interpreters
import under the converter's Python too (for their tables), and the package's interface holds."""

import subprocess
import sys

import pytest

from myriad_blob import toolchain
from myriad_blob.toolchain import scripts

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "script",
    [scripts.FRONTEND_SCRIPT, scripts.LEGACY_WORKER_SCRIPT, scripts.RUN_IR_ON_CPU_SCRIPT],
    ids=lambda path: path.name,
)
def test_each_toolchain_script_exists_and_imports_without_openvino(script):
    assert script.exists()
    probe = (
        "import importlib, sys\n"
        f"importlib.import_module('myriad_blob.toolchain.scripts.{script.stem}')\n"
        "assert not any(name == 'openvino' or name.startswith('openvino.') for name in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_script_run_without_openvino_fails_loudly():
    """The import guard only serves importing: run as a script, a missing OpenVINO is an error."""
    result = subprocess.run([sys.executable, str(scripts.FRONTEND_SCRIPT), "{}"], capture_output=True, text=True)
    assert result.returncode != 0 and "openvino" in result.stderr


def test_the_package_interface_other_modules_import():
    for name in toolchain.__all__:
        assert getattr(toolchain, name) is not None, name
    assert toolchain.SETUP_SCRIPT.exists() and toolchain.SETUP_SCRIPT.parent == scripts.HERE.parent
