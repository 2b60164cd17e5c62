"""Writing the converter's files: atomically, all or nothing, and only where allowed.

Every stage that writes a file (the blob, the report, the NN Archive, the cache) goes through
write_atomically, so a reader never sees half a file and the action's confinement (no write
outside the workspace, none through a symbolic link) holds for all of them.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
from pathlib import Path

from .errors import ConversionError, Stage

# Links to a process's open files: whatever they point at (a terminal, a pipe, or the file a shell
# redirected to), writing through them is what the user means.
_FD_LINKS = ("/dev/stdout", "/dev/stderr", "/dev/fd/", "/proc/self/fd/", "/dev/tty")


def is_stream(path: Path) -> bool:
    """'-' (standard output), a link to an open file descriptor (/dev/stdout), or an existing path
    that is not a regular file: a character device such as /dev/null, a FIFO, a socket."""
    text = str(path)
    if text == "-" or text.startswith(_FD_LINKS) or (text.startswith("/proc/") and "/fd/" in text):
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:  # missing (a new file), or a dangling link
        return False


def remove_written(paths) -> None:
    """Undo a delivery that failed half-way: remove the regular files written; a device or FIFO
    that was written through is never removed."""
    for path in paths:
        if not is_stream(path):
            Path(path).unlink(missing_ok=True)


# Where writes are confined (the action's workspace), or None (the CLI: a user's symlinked output
# folder is theirs to use). Set once by the action's conversion process: confine_writes().
_confined_to: Path | None = None


def confine_writes(root: Path) -> None:
    """From now on every write_atomically must land inside `root` and never through a symbolic
    link (a pull request can commit `model.blob -> ../../elsewhere`); else OSError, so the stage
    that writes fails with exit 15 naming the path."""
    global _confined_to
    _confined_to = Path(os.path.abspath(root))


def _check_confined(path: Path) -> None:
    if _confined_to is None:
        return
    target = Path(os.path.abspath(path))
    if target != _confined_to and _confined_to not in target.parents:
        raise OSError(errno.EACCES, f"outside the workspace {_confined_to}: write inside it", str(path))
    for step in [target, *target.parents]:
        if step == _confined_to:
            break
        if step.is_symlink():
            raise OSError(errno.ELOOP, f"{step} is a symbolic link, which the action never writes through", str(path))


def write_atomically(path: Path, content: str | bytes) -> None:
    """Write beside the target, then rename: readers never see half a file. A target that is not
    a regular file (a device, a FIFO, '-' for standard output) is written through instead, and
    is never replaced."""
    data = content.encode() if isinstance(content, str) else content
    _check_confined(path)
    if str(path) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    if is_stream(path):
        if os.path.isdir(path):
            raise IsADirectoryError(21, "Is a directory", str(path))
        with open(path, "wb") as stream:  # no O_TRUNC surprises: devices and FIFOs take a write as is
            stream.write(data)
        return
    # A symlink is never renamed over: the file it points at is the one replaced.
    path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_all_or_nothing(outputs: list) -> None:
    """(path, what, write) in order; a failed write removes what was written before it."""
    written = []
    for path, what, write in outputs:
        try:
            write()
        except OSError as error:
            remove_written(written)
            raise ConversionError(Stage.OUTPUT, f"cannot write {what} to {path}: {error.strerror}") from error
        except BaseException:  # cancelled half-way (SIGTERM): all or nothing still
            remove_written(written)
            raise
        written.append(path)
