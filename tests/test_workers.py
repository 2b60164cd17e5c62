"""Warm workers: a job that never answers, or a worker that dies, is an error with a reason, and
the pool never hands a dead worker out again."""

import sys
from typing import ClassVar

import pytest

from myriad_blob.toolchain import JsonWorker, WorkerDied, WorkerPool

pytestmark = pytest.mark.unit

SILENT = [sys.executable, "-c", "import time; time.sleep(60)"]
CRASHES = [sys.executable, "-c", "import os, sys; sys.stdin.readline(); sys.stderr.write('boom\\n'); os.abort()"]
ECHO = [sys.executable, "-c", "import sys\nfor line in sys.stdin: print(line.strip(), flush=True)"]


def test_a_job_that_never_answers_times_out_and_kills_the_worker():
    worker = JsonWorker(SILENT, {})
    with pytest.raises(WorkerDied, match=r"did not answer within 0\.5 s"):
        worker.ask({"op": "x"}, timeout=0.5)
    assert worker.dead and worker.process.poll() is not None
    worker.close()


def test_a_crash_is_named_with_the_signal_and_the_last_stderr_line():
    worker = JsonWorker(CRASHES, {})
    with pytest.raises(WorkerDied, match=r"crashed \(SIGABRT\): boom"):
        worker.ask({"op": "x"}, timeout=30)
    worker.close()


class _Kinds:
    """A pool's worker kind: the first worker crashes, the next ones answer."""

    started: ClassVar[list] = []

    def __new__(cls, toolchain):
        worker = JsonWorker(CRASHES if not cls.started else ECHO, {})
        cls.started.append(worker)
        return worker


def test_the_pool_replaces_a_dead_worker():
    pool = WorkerPool(toolchain=None, size=1, kind=_Kinds)
    with pool.borrow() as worker, pytest.raises(WorkerDied):
        worker.ask({"op": "x"}, timeout=30)
    with pool.borrow() as worker:
        assert worker is _Kinds.started[1] and worker.ask({"op": "y"}, timeout=30) == {"op": "y"}
    pool.close()
