"""Where the pinned toolchain lives, how to set it up, and its tools' paths.

OpenVINO 2021.4.2 is the last release whose PyPI wheel carries the Myriad plugin, and it
installs only for Python 3.8/3.9. It lives in its own directory (a venv plus our compile
helper, and a second venv with OpenVINO 2022.3.1 for the ONNX front end), set up by
setup-toolchain.sh and run only through subprocesses.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

from ..errors import ConversionError, Stage
from . import environment

PINNED = {"openvino": "2021.4.2", "openvino-dev": "2021.4.2", "openvino (IR front end)": "2022.3.1"}
SETUP_SCRIPT = Path(__file__).with_name("setup-toolchain.sh")


def default_dir() -> Path:
    if os.environ.get("MYRIAD_BLOB_TOOLCHAIN"):
        return Path(os.environ["MYRIAD_BLOB_TOOLCHAIN"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "myriad-blob" / f"toolchain-openvino-{PINNED['openvino']}"


@dataclasses.dataclass(frozen=True)
class Toolchain:
    root: Path
    versions: dict

    @property
    def python(self) -> Path:
        return self.root / "venv" / "bin" / "python"

    @property
    def frontend_python(self) -> Path:
        """OpenVINO 2022.3.1's environment (the IR front end)."""
        return self.root / "venv-ov2022" / "bin" / "python"

    @property
    def model_optimizer(self) -> Path:
        return self.root / "venv" / "bin" / "mo"

    @property
    def compile_helper(self) -> Path:
        return self.root / "bin" / "myriad_compile_blob"

    @property
    def faketime(self) -> Path | None:
        return environment.faketime_library()

    def environment(self, fast_clock: bool = False) -> dict:
        """Our environment without anything that would steer the legacy Python or the clock."""
        return environment.tool_environment(fast_clock)

    def run(self, args: list[str], *, fast_clock: bool = False, timeout: float = 1800) -> subprocess.CompletedProcess:
        return environment.run_tool(args, fast_clock=fast_clock, timeout=timeout)

    def start(self, args: list[str]) -> subprocess.Popen:
        return environment.start_tool(args)

    def model_optimizer_command(self, args: list[str]) -> list[str]:
        return [str(self.python), str(self.model_optimizer), *args]


def locate(root: Path | None = None) -> Toolchain:
    """The set-up toolchain, or a TOOLCHAIN error saying how to set it up."""
    root = root or default_dir()
    manifest = root / "toolchain.json"
    if not manifest.exists():
        raise ConversionError(
            Stage.TOOLCHAIN,
            f"the Myriad toolchain is not set up in {root}: run `myriad-blob setup` "
            "(or `make setup` in a checkout), or set MYRIAD_BLOB_TOOLCHAIN to where it is",
        )
    versions = json.loads(manifest.read_text())
    versions.pop("stamp", None)
    toolchain = Toolchain(root, versions)
    for tool in (toolchain.python, toolchain.frontend_python, toolchain.model_optimizer, toolchain.compile_helper):
        if not tool.exists():
            raise ConversionError(
                Stage.TOOLCHAIN,
                f"the Myriad toolchain in {root} is incomplete ({tool.name} missing): run `myriad-blob setup`",
            )
    return toolchain


def setup(root: Path | None = None) -> int:
    """Run the set-up script (idempotent); returns its exit status."""
    return subprocess.call(["bash", str(SETUP_SCRIPT), str(root or default_dir())])
