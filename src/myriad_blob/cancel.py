"""SIGTERM and SIGINT during a run (a cancelled CI job, Ctrl-C): stop the child processes, unwind
so that every `myriad-blob-*` work directory is removed by its own `with`, write the report
saying the run was cancelled, and exit with the shell's code for the signal, 128 + its number."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from .errors import ALL_EXIT_CODES

# The report's error "stage", by signal; its exit code is the shell's, 128 + the signal's number.
SIGNALS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


class Cancelled(BaseException):
    """Raised in the main thread by the signal handler, and by check() in a batch's other threads.
    A BaseException, as KeyboardInterrupt: no `except Exception` on the way turns a cancel into a
    stage's failure."""

    def __init__(self, signum: int):
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        self.stage = SIGNALS[signum]
        self.exit_code = ALL_EXIT_CODES[self.stage]
        self.report = None  # the report written, where its path was known
        super().__init__(
            f"cancelled by {self.signal_name}: the child processes were stopped and the work directories removed; "
            "no blob was written"
        )

    @property
    def message(self) -> str:
        return str(self)


def descendants(pid: int | None = None) -> list[int]:
    """Every process below pid (its children, theirs, ...), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()  # the command name may hold spaces and ")"
        except OSError:
            continue
        if fields[0] != "Z":  # exited, waiting for its parent to read its status: nothing to stop
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, parents = [], [pid or os.getpid()]
    while parents:
        for child in children.get(parents.pop(), []):
            found.append(child)
            parents.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_children(grace_s: float = 2.0) -> None:
    """SIGTERM to every descendant (the toolchain's workers, the compile helper, what they
    started), then SIGKILL to any still running after grace_s. Followed by pid, not by parent:
    a grandchild whose parent died first is no longer below us, but still ours to stop."""
    targets = descendants()
    deadline = time.monotonic() + grace_s
    sig = signal.SIGTERM
    while targets:
        for pid in targets:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        while targets and time.monotonic() < deadline:
            time.sleep(0.02)
            targets = [pid for pid in targets if _alive(pid)]
        if sig == signal.SIGKILL:
            return
        sig, targets = signal.SIGKILL, [pid for pid in targets if _alive(pid)] + descendants()


_requested: list[int] = []  # the signal, once one came


def check() -> None:
    """Raise Cancelled in this thread if a cancel came: called before a child process starts, so
    that a batch's other threads start none once the main thread is unwinding."""
    if _requested:
        raise Cancelled(_requested[0])


def _on_signal(signum, frame) -> None:
    _requested.append(signum)
    for sig in SIGNALS:  # one cancel: a second signal during the clean-up only stops children again
        signal.signal(sig, lambda *_: stop_children(grace_s=0))
    stop_children()
    raise Cancelled(signum)


def install() -> dict:
    """Turn SIGTERM and SIGINT into Cancelled in the main thread; the handlers they had."""
    _requested.clear()
    return {sig: signal.signal(sig, _on_signal) for sig in SIGNALS}


@contextlib.contextmanager
def exit_when_cancelled():
    """Around a command: a Cancelled that reaches here is one line on stderr and exit 128 + signal.
    The signals' handlers are given back on the way out (a test may run a command in-process)."""
    previous = install()
    try:
        yield
    except Cancelled as cancelled:
        stop_children(grace_s=0.5)  # anything a thread started while the main one unwound
        where = f" (report: {cancelled.report})" if cancelled.report else ""
        print(f"myriad-blob: {cancelled.message}{where}", file=sys.stderr)
        sys.exit(cancelled.exit_code)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
