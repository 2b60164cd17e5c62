"""The environment the toolchain's subprocesses run in: ours, without anything that would steer
the legacy Python or the clock, and, for compiling, libfaketime's fast clock."""

from __future__ import annotations

import os
import resource
import subprocess
from pathlib import Path

from ..cancel import check as check_cancelled
from .commands import record

# The plugin spends a fixed 5 s of wall-clock time searching for devices on every LoadNetwork
# (see README, "Why compiling is fast"). Under libfaketime the clock runs this much faster, so
# the window closes in milliseconds; the blob is byte-identical.
FAKETIME_SPEEDUP = 200
FAKETIME_LIBRARY = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


def faketime_library() -> Path | None:
    return FAKETIME_LIBRARY if FAKETIME_LIBRARY.exists() else None


# The compiler and OpenVINO's CPU plugin walk the graph recursively, some stack frames per layer of
# depth: under the usual 8 MiB stack a deep model (a chain of 20,000 layers, an unrolled LSTM) crashes
# them with SIGSEGV and no message (measured: 10,000 layers compile, 20,000 crash). Their main thread
# gets this much, 30 times the depth; finite, as under an unlimited stack glibc gives every thread
# 2 MiB. A tool's threads reserve (not use) as much address space each; our own threads keep theirs
# (glibc sizes them at start-up), and every child started after this inherits it.
TOOL_STACK_BYTES = 256 << 20


def raise_stack_limit() -> None:
    """RLIMIT_STACK at least TOOL_STACK_BYTES (within the hard limit), inherited by every tool started after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    wanted = TOOL_STACK_BYTES if hard == resource.RLIM_INFINITY else min(TOOL_STACK_BYTES, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_STACK, (wanted, hard))


def tool_environment(fast_clock: bool = False) -> dict:
    """Our environment without PYTHON*, LD_PRELOAD and FAKETIME*; with fast_clock (and libfaketime
    installed), the clock sped up FAKETIME_SPEEDUP times. Every tool starts from here, so this is
    also where its stack limit is raised (raise_stack_limit)."""
    raise_stack_limit()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LD_PRELOAD", "FAKETIME"))}
    faketime = faketime_library()
    if fast_clock and faketime:
        env["LD_PRELOAD"] = str(faketime)
        env["FAKETIME"] = f"+0 x{FAKETIME_SPEEDUP}"
    return env


def run_tool(args: list[str], *, fast_clock: bool = False, timeout: float = 1800) -> subprocess.CompletedProcess:
    check_cancelled()
    record(args)
    return subprocess.run(
        args, capture_output=True, text=True, env=tool_environment(fast_clock), timeout=timeout, check=False
    )


def start_tool(args: list[str]) -> subprocess.Popen:
    """A tool started in the background (stdout and stderr piped, text)."""
    check_cancelled()
    record(args)
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=tool_environment())
