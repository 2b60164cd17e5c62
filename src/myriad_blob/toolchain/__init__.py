"""The pinned legacy Myriad toolchain: where it lives, how to set it up, how to run its tools.

OpenVINO 2021.4.2 is the last release whose PyPI wheel carries the Myriad plugin, and it
installs only for Python 3.8/3.9. It lives in its own directory (a venv plus our compile
helper), set up by setup-toolchain.sh and run only through subprocesses from here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import re
import subprocess
import threading
from pathlib import Path

from ..errors import ConversionError, Stage

PINNED = {"openvino": "2021.4.2", "openvino-dev": "2021.4.2"}
SETUP_SCRIPT = Path(__file__).with_name("setup-toolchain.sh")
# The plugin spends a fixed 5 s of wall-clock time searching for devices on every LoadNetwork
# (see README, "Why compiling is fast"). Under libfaketime the clock runs this much faster, so
# the window closes in milliseconds; the blob is byte-identical.
FAKETIME_SPEEDUP = 200
FAKETIME_LIBRARY = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


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
    def model_optimizer(self) -> Path:
        return self.root / "venv" / "bin" / "mo"

    @property
    def compile_helper(self) -> Path:
        return self.root / "bin" / "myriad_compile_blob"

    @property
    def faketime(self) -> Path | None:
        return FAKETIME_LIBRARY if FAKETIME_LIBRARY.exists() else None

    def environment(self, fast_clock: bool = False) -> dict:
        """Our environment without anything that would steer the legacy Python or the clock."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LD_PRELOAD", "FAKETIME"))}
        if fast_clock and self.faketime:
            env["LD_PRELOAD"] = str(self.faketime)
            env["FAKETIME"] = f"+0 x{FAKETIME_SPEEDUP}"
        return env

    def run(self, args: list[str], *, fast_clock: bool = False, timeout: float = 1800) -> subprocess.CompletedProcess:
        return subprocess.run(args, capture_output=True, text=True, env=self.environment(fast_clock),
                              timeout=timeout, check=False)

    def model_optimizer_command(self, args: list[str]) -> list[str]:
        return [str(self.python), str(self.model_optimizer), *args]


class LegacyWorker:
    """One warm legacy-toolchain process (legacy_worker.py); one job at a time."""

    SCRIPT = Path(__file__).with_name("legacy_worker.py")

    def __init__(self, toolchain: Toolchain):
        self.process = subprocess.Popen([str(toolchain.python), str(self.SCRIPT)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                        env=toolchain.environment())

    def call(self, op: str, **job) -> tuple[int, str]:
        """(returncode, everything the job printed)."""
        self.process.stdin.write(json.dumps({"op": op, **job}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            return 1, "the legacy toolchain worker exited"
        answer = json.loads(line)
        return answer["returncode"], answer["output"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=30)


class WorkerPool:
    """Warm workers for a batch, at most one per thread that converts; a job borrows one at a
    time. Workers start on first use, so a batch served from the cache starts none."""

    def __init__(self, toolchain: Toolchain, size: int):
        self._toolchain, self._size = toolchain, size
        self._idle: queue.Queue = queue.Queue()
        self._all: list[LegacyWorker] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def borrow(self):
        with self._lock:
            if self._idle.empty() and len(self._all) < self._size:
                self._all.append(LegacyWorker(self._toolchain))
                self._idle.put(self._all[-1])
        worker = self._idle.get()
        try:
            yield worker
        finally:
            self._idle.put(worker)

    def close(self) -> None:
        for worker in self._all:
            worker.close()


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
    for tool in (toolchain.python, toolchain.model_optimizer, toolchain.compile_helper):
        if not tool.exists():
            raise ConversionError(Stage.TOOLCHAIN, f"the Myriad toolchain in {root} is incomplete ({tool.name} missing): run `myriad-blob setup`")
    return toolchain


def setup(root: Path | None = None) -> int:
    """Run the set-up script (idempotent); returns its exit status."""
    return subprocess.call(["bash", str(SETUP_SCRIPT), str(root or default_dir())])


_STATUS_PREFIX = re.compile(r"^\[ [A-Z_]+ \]\s*")  # "[ GENERAL_ERROR ] "
_SOURCE_LOCATION = re.compile(r"^\S+\.(?:cpp|hpp|h):\d+\s*")  # "/home/jenkins/.../graph_transformer.cpp:88 "


def helper_error(stderr: str) -> str:
    """The helper's error as one line: OpenVINO's message without its status tag, source path
    and the plugin's colour-coded warnings."""
    text = stderr.split("ERROR: ", 1)[1] if "ERROR: " in stderr else stderr
    parts = []
    for line in text.splitlines():
        if "[Warning]" in line:
            continue
        line = _SOURCE_LOCATION.sub("", _STATUS_PREFIX.sub("", line.strip()))
        if line:
            parts.append(line)
    return " ".join(parts) or "no message"
