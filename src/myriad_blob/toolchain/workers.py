"""Warm toolchain processes: one JSON job line in, one JSON answer line out, so a batch pays the
interpreter start-up and OpenVINO's imports once per worker; and the pool a batch borrows them from."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import tempfile
import threading

from ..cancel import check as check_cancelled
from .commands import record
from .install import Toolchain
from .scripts import FRONTEND_SCRIPT, LEGACY_WORKER_SCRIPT, RUN_IR_ON_CPU_SCRIPT
from .tool_errors import describe_exit, last_line


class WorkerDied(Exception):
    """A warm worker exited or stopped answering; the message says how (signal, last stderr line)."""


class JsonWorker:
    """One warm child process that answers one JSON line per JSON job line; one job at a time.
    Its stderr goes to a file, so a crash can be explained; a dead worker is never reused."""

    def __init__(self, command: list[str], env: dict):
        check_cancelled()
        self._stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 (lives as long as the worker; close() closes it)
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env
        )
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
        raise WorkerDied(
            f"did not answer within {timeout:g} s"
            if timed_out
            else describe_exit(self.process.returncode, self.stderr_tail())
        )

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


class LegacyWorker(JsonWorker):
    """Model Optimizer 2021.4 and the 2021.4 CPU plugin, warm (legacy_worker.py)."""

    SCRIPT = LEGACY_WORKER_SCRIPT

    def __init__(self, toolchain: Toolchain):
        super().__init__([str(toolchain.python), str(self.SCRIPT)], toolchain.environment())
        self.toolchain = toolchain

    def one_shot_command(self, op: str, job: dict) -> list[str]:
        """The command line that runs this job alone (`mo ARGS`; run_ir_on_cpu.py XML IN OUT [RANGES])."""
        if op == "mo":
            return self.toolchain.model_optimizer_command(job["args"])
        return [
            str(self.toolchain.python),
            str(RUN_IR_ON_CPU_SCRIPT),
            job["xml"],
            job["inputs"],
            job["outputs"],
            *([job["ranges"]] if job.get("ranges") else []),
        ]

    def call(self, op: str, timeout: float | None = None, **job) -> tuple[int, str]:
        """(returncode, everything the job printed)."""
        record(self.one_shot_command(op, job))
        try:
            answer = self.ask({"op": op, **job}, timeout)
        except WorkerDied as error:
            return 1, f"the legacy toolchain worker {error}"
        return answer["returncode"], answer["output"]


class FrontendWorker(JsonWorker):
    """OpenVINO 2022.3.1's ONNX front end, warm (ov2022_ir.py --worker)."""

    def __init__(self, toolchain: Toolchain):
        super().__init__([str(toolchain.frontend_python), str(FRONTEND_SCRIPT), "--worker"], toolchain.environment())
        self.toolchain = toolchain

    def ask(self, job: dict, timeout: float | None = None) -> dict:
        record([str(self.toolchain.frontend_python), str(FRONTEND_SCRIPT), json.dumps(job)])  # its one-shot form
        return super().ask(job, timeout)


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


def run_job(toolchain, worker, op: str, job: dict, command: list, timeout: float) -> tuple[int, str]:
    """One job of the legacy toolchain's Python: on the batch's warm worker when there is one (as
    op with job's fields), else as command in a child process. (returncode, what it printed; for a
    child, its stderr). A job past timeout is (1, why), as the worker reports its own."""
    import subprocess

    if worker is not None:
        return worker.call(op, timeout=timeout, **job)
    try:
        result = toolchain.run(command, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 1, f"did not finish within {timeout:g} s"
    if result.returncode < 0:  # killed by a signal: say which, with its last words if any
        return result.returncode, describe_exit(
            result.returncode, last_line(result.stderr) if result.stderr.strip() else ""
        )
    return result.returncode, result.stderr
