"""The pinned legacy Myriad toolchain, split by job:

- install.py       where it lives, how to set it up, its tools' paths (Toolchain, locate, setup)
- environment.py   the environment its subprocesses run in (libfaketime's fast clock for compiling)
- workers.py       warm worker processes and the pool a batch borrows them from
- tool_errors.py   a tool's failure as one line (the compile helper's message, a child's exit)
- commands.py      the command lines a report stage ran, recorded for the report
- scripts/         what runs inside the toolchain's own Python 3.8/3.9 interpreters
- setup-toolchain.sh, compile_blob.cpp, *-requirements.txt: the set-up and the compile helper

The names below are the package's interface: import them from here.
"""

from .commands import record, recording
from .environment import FAKETIME_LIBRARY, FAKETIME_SPEEDUP
from .install import PINNED, SETUP_SCRIPT, Toolchain, default_dir, locate, setup
from .scripts import FRONTEND_SCRIPT, LEGACY_WORKER_SCRIPT, RUN_IR_2022_SCRIPT, RUN_IR_ON_CPU_SCRIPT
from .tool_errors import describe_exit, helper_error, last_line
from .workers import FrontendWorker, JsonWorker, LegacyWorker, WorkerDied, WorkerPool, run_job

__all__ = [
    "FAKETIME_LIBRARY",
    "FAKETIME_SPEEDUP",
    "FRONTEND_SCRIPT",
    "LEGACY_WORKER_SCRIPT",
    "PINNED",
    "RUN_IR_2022_SCRIPT",
    "RUN_IR_ON_CPU_SCRIPT",
    "SETUP_SCRIPT",
    "FrontendWorker",
    "JsonWorker",
    "LegacyWorker",
    "Toolchain",
    "WorkerDied",
    "WorkerPool",
    "default_dir",
    "describe_exit",
    "helper_error",
    "last_line",
    "locate",
    "record",
    "recording",
    "run_job",
    "setup",
]
