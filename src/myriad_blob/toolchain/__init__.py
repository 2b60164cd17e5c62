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
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

from ..errors import ConversionError, Stage

PINNED = {"openvino": "2021.4.2", "openvino-dev": "2021.4.2", "openvino (IR front end)": "2022.3.1"}
SETUP_SCRIPT = Path(__file__).with_name("setup-toolchain.sh")
FRONTEND_SCRIPT = Path(__file__).with_name("ov2022_ir.py")
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


class WorkerDied(Exception):
    """A warm worker exited or stopped answering; the message says how (signal, last stderr line)."""


class JsonWorker:
    """One warm child process that answers one JSON line per JSON job line; one job at a time.
    Its stderr goes to a file, so a crash can be explained; a dead worker is never reused."""

    def __init__(self, command: list[str], env: dict):
        self._stderr = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self._stderr, text=True, env=env)
        self.dead = False

    def ask(self, job: dict, timeout: float | None = None) -> dict:
        """The answer, or WorkerDied (the process is then killed and must be replaced)."""
        if self.dead:
            raise WorkerDied("the worker already died")
        answer: list = []
        reader = threading.Thread(target=lambda: answer.append(self.process.stdout.readline()), daemon=True)
        try:
            self.process.stdin.write(json.dumps(job) + "\n")
            self.process.stdin.flush()
            reader.start()
            reader.join(timeout)
        except OSError:
            pass
        if answer and answer[0]:
            return json.loads(answer[0])
        self.dead = True
        timed_out = reader.is_alive()
        self.process.kill()
        self.process.wait()
        raise WorkerDied(f"did not answer within {timeout:g} s" if timed_out else describe_exit(self.process.returncode, self.stderr_tail()))

    def stderr_tail(self) -> str:
        self._stderr.seek(0)
        lines = [line.strip() for line in self._stderr.read().splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._stderr.close()


def describe_exit(returncode: int, last_line: str = "") -> str:
    """'crashed (SIGSEGV)' / 'exited with status 3', plus its last line of stderr."""
    if returncode < 0:
        try:
            text = f"crashed ({signal.Signals(-returncode).name})"
        except ValueError:
            text = f"crashed (signal {-returncode})"
    else:
        text = f"exited with status {returncode}"
    return text + (f": {last_line}" if last_line else "")


class LegacyWorker(JsonWorker):
    """Model Optimizer 2021.4 and the 2021.4 CPU plugin, warm (legacy_worker.py)."""

    SCRIPT = Path(__file__).with_name("legacy_worker.py")

    def __init__(self, toolchain: Toolchain):
        super().__init__([str(toolchain.python), str(self.SCRIPT)], toolchain.environment())

    def call(self, op: str, timeout: float | None = None, **job) -> tuple[int, str]:
        """(returncode, everything the job printed)."""
        try:
            answer = self.ask({"op": op, **job}, timeout)
        except WorkerDied as error:
            return 1, f"the legacy toolchain worker {error}"
        return answer["returncode"], answer["output"]


class FrontendWorker(JsonWorker):
    """OpenVINO 2022.3.1's ONNX front end, warm (ov2022_ir.py --worker)."""

    def __init__(self, toolchain: Toolchain):
        super().__init__([str(toolchain.frontend_python), str(FRONTEND_SCRIPT), "--worker"], toolchain.environment())


class WorkerPool:
    """Warm workers of one kind for a batch, at most one per thread that converts; a job borrows
    one at a time. Workers start on first use, so a batch served from the cache starts none; a
    worker that died is dropped and the next borrower starts a fresh one."""

    def __init__(self, toolchain: Toolchain, size: int, kind: type = LegacyWorker):
        self._toolchain, self._size, self._kind = toolchain, size, kind
        self._idle: queue.Queue = queue.Queue()
        self._count = 0
        self._all: list[JsonWorker] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def borrow(self):
        with self._lock:
            if self._idle.empty() and self._count < self._size:
                self._all.append(self._kind(self._toolchain))
                self._count += 1
                self._idle.put(self._all[-1])
        worker = self._idle.get()
        try:
            yield worker
        finally:
            if worker.dead:
                with self._lock:
                    self._count -= 1
                worker.close()
            else:
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
    for tool in (toolchain.python, toolchain.frontend_python, toolchain.model_optimizer, toolchain.compile_helper):
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
