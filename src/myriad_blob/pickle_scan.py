"""What a pickle would do when loaded, read from its opcodes before anything of it runs.

A pickle is a program: GLOBAL names any importable object, REDUCE calls it with arguments from
the file, NEWOBJ calls a class's __new__, BUILD sets an object's state. torch.load's
weights_only unpickler limits the names, but a name it is told to allow may then be *called*
with the file's arguments: an allowed ultralytics class REDUCEd with `("payload.pt",)` runs its
constructor, and AutoBackend's constructor torch.loads another file with weights_only=False.

So a checkpoint is judged here, from `pickletools.genops` (which decodes and runs nothing), by
how each name is used:
- CALLS: data builders that may be called with the file's arguments (a tensor from a storage,
  an OrderedDict, a set, a path object, numpy scalars): each builds data and runs nothing else.
- VALUES: names that may only appear as values (storage types, dtypes): never called.
- module classes (the caller's `module_prefixes`, e.g. ultralytics' layers and torch's): only
  created with no arguments and no constructor (NEWOBJ with `()`, what pickling an nn.Module
  writes) and given their state by BUILD; a class whose __new__, __setstate__ or __setattr__ is
  its own (not torch's) is refused unless it is in REVIEWED_STATE.
Anything else (a REDUCE of a module class, getattr, os.system, an opcode outside protocol 2's
data ops) is refused with its name, before torch.load sees the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import io
import pickletools
import zipfile

# Called with the file's arguments: each builds plain data and nothing else.
CALLS = frozenset(
    {
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch.Size",
        "collections.OrderedDict",
        "builtins.set",
        "builtins.frozenset",
        "builtins.complex",
        "__builtin__.set",  # protocol 2 writes Python 2's module name
        "__builtin__.frozenset",
        "pathlib.PosixPath",  # a path object: nothing is opened
        "pathlib.WindowsPath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
        "numpy.dtype",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "argparse.Namespace",  # training scripts' hyper-parameters
        "ultralytics.utils.IterableSimpleNamespace",  # ultralytics' train_args
    }
)
CALL_PREFIXES = ("numpy.dtypes.",)  # numpy 2's dtype classes (Float32DType, ...): dtypes
# Only ever values (inside a persistent id, a dtype field): never called.
VALUES = frozenset(
    {"numpy.ndarray"}
    | {
        f"torch.{kind}Storage"
        for kind in ("Float", "Half", "BFloat16", "Double", "Long", "Int", "Short", "Char", "Byte", "Bool")
    }
    | {
        f"torch.{dtype}"
        for dtype in ("float16", "float32", "float64", "bfloat16", "int8", "uint8", "int16", "int32", "int64", "bool")
    }
)
# Module classes whose own __setstate__ was read and only fills in attributes of old checkpoints.
REVIEWED_STATE = frozenset({"ultralytics.nn.modules.block.AAttn"})
# Python 2 spellings protocol 2 writes for builtins.
_RENAMED = {"__builtin__": "builtins", "copy_reg": "copyreg"}

# Protocol 0-5 opcodes that push data or move it around, run nothing (the rest are handled below).
_STRINGS = {"BINUNICODE", "SHORT_BINUNICODE", "UNICODE", "BINUNICODE8", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_REFUSED_OPS = {"INST", "OBJ", "EXT1", "EXT2", "EXT4", "PERSID", "NEWOBJ_EX", "READONLY_BUFFER", "NEXT_BUFFER"}


@dataclasses.dataclass(frozen=True)
class Refusal:
    name: str  # module.Name as the file writes it
    how: str  # "called with arguments from the file", ...

    def __str__(self) -> str:
        return f"{self.name} ({self.how})"


@dataclasses.dataclass(frozen=True)
class _Global:
    name: str


@dataclasses.dataclass(frozen=True)
class _Tuple:
    size: int


class _Mark:
    pass


_MARK = _Mark()


def uses(data: bytes | io.BufferedIOBase) -> list[tuple[str, str]]:
    """Every use of a named object in one pickle, in order: (name, how), how one of "call"
    (REDUCE), "new" (NEWOBJ with no arguments), "new-with-args", "value", or ("opcode NAME",
    "refused") for an opcode that is never data. Reads up to the pickle's STOP; runs nothing.
    Raises ValueError on a malformed pickle."""
    stack: list = []
    memo: dict = {}
    found: list[tuple[str, str]] = []

    def pop():
        if not stack:
            raise ValueError("pickle stack underflow")
        item = stack.pop()
        if isinstance(item, _Global):
            found.append((item.name, "value"))
        return item

    def pop_mark() -> int:
        count = 0
        while stack and stack[-1] is not _MARK:
            pop()
            count += 1
        if not stack:
            raise ValueError("no MARK on the pickle stack")
        stack.pop()
        return count

    stream = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    for op, arg, _ in pickletools.genops(stream):
        name = op.name
        if name in _REFUSED_OPS:
            found.append((f"opcode {name}", "refused"))
            stack.append(None)
        elif name == "GLOBAL":
            module, _, attribute = arg.partition(" ")
            stack.append(_Global(f"{_RENAMED.get(module, module)}.{attribute}"))
        elif name == "STACK_GLOBAL":
            attribute, module = stack.pop(), stack.pop()
            if not (isinstance(attribute, str) and isinstance(module, str)):
                found.append(("STACK_GLOBAL of computed names", "refused"))
                stack.append(None)
            else:
                stack.append(_Global(f"{_RENAMED.get(module, module)}.{attribute}"))
        elif name in _STRINGS:
            stack.append(arg if isinstance(arg, str) else None)
        elif name == "EMPTY_TUPLE":
            stack.append(_Tuple(0))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            size = int(name[-1])
            for _ in range(size):
                pop()
            stack.append(_Tuple(size))
        elif name == "TUPLE":
            stack.append(_Tuple(pop_mark()))
        elif name == "MARK":
            stack.append(_MARK)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(arg))
        elif name in ("REDUCE", "NEWOBJ"):
            args, target = stack.pop(), stack.pop()
            if isinstance(args, _Global):
                found.append((args.name, "value"))
            if not isinstance(target, _Global):
                found.append(("a computed callable", "refused"))
            elif name == "REDUCE":
                found.append((target.name, "call"))
            else:
                empty = isinstance(args, _Tuple) and args.size == 0
                found.append((target.name, "new" if empty else "new-with-args"))
            stack.append(None)
        elif name == "STOP":
            break
        else:  # a data op: pops and pushes by its signature
            before, after = op.stack_before, op.stack_after
            if pickletools.markobject in before:
                pop_mark()
                before = before[: before.index(pickletools.markobject)]
            for _ in before:
                pop()
            stack.extend([None] * len(after))
    return found


def refusals(found: list[tuple[str, str]], module_prefixes: tuple[str, ...] = ()) -> list[Refusal]:
    """What the policy above refuses of `found` (uses()), each name once, in file order."""
    refused: dict[str, Refusal] = {}
    for name, how in found:
        why = _why_refused(name, how, module_prefixes)
        if why and name not in refused:
            refused[name] = Refusal(name, why)
    return list(refused.values())


def _why_refused(name: str, how: str, module_prefixes: tuple[str, ...]) -> str | None:
    if how == "refused":
        return "not a data operation"
    if name in CALLS or name.startswith(CALL_PREFIXES) or name in _torch_data_names():
        return None  # a data builder, called or not
    if name in VALUES:
        return None if how == "value" else "called with arguments from the file"
    if name.startswith(module_prefixes):
        if how == "call":
            return "its constructor called with arguments from the file"
        if how == "new-with-args":
            return "created with arguments from the file"
        if how == "value":
            return "a class as a value, which model code could call"
        return _module_class_refusal(name)
    return {
        "call": "called with arguments from the file",
        "value": "not a tensor, container or model class",
    }.get(how, "not a tensor, container or model class")


@functools.cache
def _torch_data_names() -> frozenset[str]:
    """What torch's own weights_only unpickler allows by default (tensor rebuilders, storages,
    dtypes, OrderedDict, _codecs.encode for bytes, ...): torch's audited list of data builders."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        return frozenset(_get_allowed_globals())
    except Exception:  # a torch without it: our own table alone
        return frozenset()


def _module_class_refusal(name: str) -> str | None:
    """None when `name` is an nn.Module class whose creation and state-setting are torch's own."""
    import torch

    cls = resolve(name)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        return "not a model layer class"
    if name in REVIEWED_STATE:
        return None
    for method in ("__new__", "__setstate__", "__setattr__"):
        owner = next(k for k in cls.__mro__ if method in vars(k))
        if owner is not object and not owner.__module__.startswith("torch."):
            return f"its own {method} would run"
    return None


# Old module -> its new home, for checkpoints that name modules their library has since moved
# (what that library's own loader maps). A model family registers its library's (families/).
RENAMED_MODULES: dict[str, str] = {}


def resolve(name: str):
    """The object `module.Name` names, imported (only ever called for names the policy admits by
    prefix: ultralytics' and torch's own modules), or None."""
    module_name, _, attribute = name.rpartition(".")
    for old, new in RENAMED_MODULES.items():
        if module_name == old or module_name.startswith(old + "."):
            module_name = new + module_name[len(old) :]
    try:
        return getattr(importlib.import_module(_RENAMED.get(module_name, module_name)), attribute, None)
    except ImportError:
        return None


def allowed_globals(names) -> list[tuple[object, str]]:
    """What torch.load(weights_only=True) is told to allow for a scanned pickle: each name it uses,
    resolved, and with `numpy.dtype` the dtype classes its BUILD gives state to (numpy 2 pickles a
    dtype as numpy.dtype(...) and then BUILDs the instance, a numpy.dtypes.Float64DType, which the
    pickle never names)."""
    allowed = [(obj, name) for name in dict.fromkeys(names) if (obj := resolve(name)) is not None]
    if "numpy.dtype" in names:
        import numpy

        dtypes = getattr(numpy, "dtypes", None)
        allowed += (
            [
                (cls, f"numpy.dtypes.{cls.__name__}")
                for cls in vars(dtypes).values()
                if isinstance(cls, type) and issubclass(cls, numpy.dtype)
            ]
            if dtypes
            else []
        )
    return allowed


def pickles_in(path) -> list[bytes]:
    """The pickle programs a torch.save file holds: a zip's data.pkl (and its other .pkl members),
    or the legacy format's leading pickles (magic number, protocol, system info, the object, the
    storage keys), as bytes. Raises ValueError where the file is neither."""
    with _opened(path) as handle:
        head = handle.read(4)
        handle.seek(0)
        if head.startswith(b"PK\x03\x04"):
            return [data for name, data in zip_members(handle).items() if name.endswith(".pkl")]
        programs = []
        for _ in range(5):  # the legacy format's pickles, one after another
            start = handle.tell()
            for _op in pickletools.genops(handle):
                pass
            end = handle.tell()
            handle.seek(start)
            programs.append(handle.read(end - start))
        return programs


def zip_members(source) -> dict[str, bytes]:
    """A torch zip archive's members (full names, as Python's zipfile lists them) and their bytes,
    once torch's own reader (PyTorchFileReader: what torch.load and torch.export.load read) is
    seen to hold the same names with the same bytes. A zip's directory can be crafted so that two
    readers see two different files (Python's zipfile and miniz find the central directory
    differently): what is judged must be what torch loads. Raises ValueError where they differ."""
    import torch

    with _opened(source) as handle:
        handle.seek(0)
        try:
            with zipfile.ZipFile(handle) as archive:
                members = {name: archive.read(name) for name in archive.namelist()}
                if len(members) != len(archive.namelist()):
                    raise ValueError("the zip names a member twice")
        except zipfile.BadZipFile as error:
            raise ValueError(f"a damaged zip archive ({error})") from None
        handle.seek(0)
        try:
            reader = torch._C.PyTorchFileReader(handle)
            records = {name: bytes(reader.get_record(name)) for name in reader.get_all_records()}
        except Exception as error:  # torch's reader refuses the archive: torch.load would too
            raise ValueError(f"torch cannot read this zip archive ({str(error).splitlines()[0][:200]})") from None
    stripped = {name.partition("/")[2]: data for name, data in members.items()}
    if len(stripped) != len(members) or stripped != records:
        raise ValueError(
            "its zip directory shows torch other members than Python's zipfile (a crafted archive): save it again"
        )
    return members


def _opened(path):
    """A file object for a path, or the (in-memory) file object given, left open for the caller."""
    return contextlib.nullcontext(path) if hasattr(path, "read") else open(path, "rb")


def scan_file(path, module_prefixes: tuple[str, ...] = ()) -> tuple[list[tuple[str, str]], list[Refusal]]:
    """(every use, the refusals) over all pickles of a torch.save file (a path, or a file object
    holding one, e.g. a .pt2's sample inputs). Raises ValueError when a pickle is malformed."""
    found = [use for program in pickles_in(path) for use in uses(program)]
    return found, refusals(found, module_prefixes)


def listed(refused: list[Refusal], most: int = 3, how: bool = True) -> str:
    """The first `most` refusals for a message, each with why (how=True) or by name alone."""
    shown = ", ".join(str(r) if how else r.name for r in refused[:most])
    return shown + (f" and {len(refused) - most} more" if len(refused) > most else "")
