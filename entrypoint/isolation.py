"""The conversion runs in a child process that never holds a secret.

Loading a model can run its code (a TorchScript program, a trusted pickle): whatever that code
can reach, a pull request's author can. So the token stays in this (publishing) process, and the
conversion runs in a child started with:
- an environment without the token, the runner's other credentials (ACTIONS_RUNTIME_TOKEN, the
  OIDC request token) and the runner's command files (GITHUB_ENV, GITHUB_PATH, ...: a line
  written there changes later steps), nor any variable whose value is the token;
- no way to read ours: this process is made non-dumpable (prctl PR_SET_DUMPABLE 0), so its
  /proc/<pid>/environ and memory are closed to any process without CAP_SYS_PTRACE, and the child
  starts without that capability (dropped from its bounding set);
- where we run as root (GitHub runs container actions as root) and the workspace belongs to
  another user (the runner's, uid 1001 on GitHub's runners): that user's uid with the group
  nogroup and no supplementary groups (the workspace's group on GitHub's hosted runners is
  `docker`, which opens the Docker socket mounted into every container action), as long as the
  interpreter and toolchain can be read by others (they can in the action's image); once it
  ends, every process left under that uid is killed (model code may leave one behind);
- else, as root, in PID and mount namespaces of its own (util-linux `unshare`, where the
  kernel lets us): its /proc shows no process of ours to read (some kernels let root read a
  non-dumpable process's environment without CAP_SYS_PTRACE);
- else a notice says the model's code runs beside the token's holder.
"""

from __future__ import annotations

import base64
import ctypes
import dataclasses
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

# What the child never sees: the runner's credentials and its command files.
WITHHELD = (
    "INPUT_GITHUB-TOKEN",
    "INPUT_GITHUB_TOKEN",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_RUNTIME_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_CACHE_URL",
    "ACTIONS_RESULTS_URL",
    "GITHUB_ENV",
    "GITHUB_PATH",
    "GITHUB_OUTPUT",
    "GITHUB_STATE",
    "GITHUB_STEP_SUMMARY",
)
_PR_SET_DUMPABLE, _PR_CAPBSET_DROP = 4, 24  # <linux/prctl.h>
_CAP_SYS_PTRACE = 19  # <linux/capability.h>
NOGROUP = 65534  # Debian's nogroup: no file or socket of the runner's belongs to it


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux: nothing to close
        return False


def close_own_proc_files() -> None:
    """Non-dumpable: our /proc/<pid>/environ and mem are readable only with CAP_SYS_PTRACE."""
    _prctl(_PR_SET_DUMPABLE, 0)


def child_environment(token: str) -> dict:
    return {
        name: value for name, value in os.environ.items() if name not in WITHHELD and not (token and token in value)
    }


def _readable_by_others(path: Path) -> bool:
    """Every directory on the way is searchable by others, and the file readable."""
    try:
        path = path.resolve()
        if not path.stat().st_mode & stat.S_IROTH:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents)
    except OSError:
        return False


def child_identity(workspace: Path, needed: list[Path]) -> tuple[int, int] | None:
    """(uid, gid) the child takes: the workspace owner's, when we are root, it is not, and it can
    read what the conversion needs (`needed`: the interpreter, the toolchain). None: keep ours."""
    if os.geteuid() != 0:
        return None
    try:
        owner = workspace.stat()
    except OSError:
        return None
    if owner.st_uid == 0 or not all(_readable_by_others(path) for path in needed):
        return None
    return owner.st_uid, NOGROUP


def _drop_privileges(identity: tuple[int, int] | None) -> None:
    """In the child, before it runs anything of ours: no CAP_SYS_PTRACE, then the user's identity."""
    if os.geteuid() == 0:
        _prctl(_PR_CAPBSET_DROP, _CAP_SYS_PTRACE)
    if identity is not None:
        uid, gid = identity
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)


@dataclasses.dataclass(frozen=True)
class Plan:
    identity: tuple[int, int] | None  # setuid/setgid to these
    prefix: tuple[str, ...]  # the command the child runs under (unshare), or ()
    how: str  # for the notice and the tests


UNSHARE = ("--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM")


def plan(workspace: Path, needed: list[Path]) -> Plan:
    """How the child is kept away from this process (see the module's docstring)."""
    if os.geteuid() != 0:
        return Plan(None, (), "another process without CAP_SYS_PTRACE")
    identity = child_identity(workspace, needed)
    if identity is not None:
        return Plan(identity, (), f"uid {identity[0]}")
    unshare = shutil.which("unshare", path="/usr/bin:/bin")
    if unshare:
        try:
            probe = subprocess.run([unshare, *UNSHARE, sys.executable, "-c", ""], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            probe = None
        if probe is not None and probe.returncode == 0:
            return Plan(None, (unshare, *UNSHARE), "own PID namespace")
    return Plan(None, (), "root beside the token")


def run_child(argv: list[str], env: dict, identity: tuple[int, int] | None) -> int:
    """Run the child to its end; SIGTERM and SIGINT (a cancelled job) are passed on to it."""
    child = subprocess.Popen(argv, env=env, preexec_fn=lambda: _drop_privileges(identity))
    forwarded = {}

    def forward(signum, _frame):
        child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        forwarded[signum] = signal.signal(signum, forward)
    try:
        return child.wait()
    finally:
        for signum, handler in forwarded.items():
            signal.signal(signum, handler)
        if identity is not None:
            _kill_everything_of(identity[0])


def _kill_everything_of(uid: int) -> None:
    """SIGKILL every process the child's uid can signal (in the container's PID namespace: what
    the child left behind), from a short-lived process of that uid (kill(-1) as that user)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the forked process)
        try:
            os.setgroups([])
            os.setgid(NOGROUP)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)  # kills this process too, last
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def interpreter() -> Path:
    return Path(sys.executable)


# A secret shows in text as itself or base64-encoded (actions/checkout's `AUTHORIZATION: basic`
# header is base64 of `x-access-token:<token>`), whole or cut short by whoever quoted it.
_TOKEN_RUN = re.compile(r"[A-Za-z0-9+/=_-]{12,}")


def redact(text: str, secret: str) -> str:
    """`text` with every run of token characters that shares 12 characters in a row with the
    secret, or with its base64 forms, replaced by ***: as GitHub masks secrets in logs, for
    what goes where GitHub does not mask (a comment, the step summary)."""
    if not secret:
        return text
    forms = [secret] + [
        base64.b64encode(prefix + secret.encode()).decode() for prefix in (b"", b"x-access-token:", b"x-oauth-basic:")
    ]
    grams = {form[i : i + 12] for form in forms for i in range(len(form) - 11)}

    def mask(match: re.Match) -> str:
        run = match.group(0)
        return "***" if any(run[i : i + 12] in grams for i in range(len(run) - 11)) else run

    return _TOKEN_RUN.sub(mask, text)
