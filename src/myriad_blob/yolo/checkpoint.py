"""Loading a `best.pt` that `yolo train` wrote, without running code from the file.

ultralytics' trainer pickles its own nn.Module classes (DetectionModel, Conv, C2f, Detect, ...)
under the checkpoint's `ema` key (and `model` for older versions), beside plain data: train_args,
metrics, dates. A pickle can name any importable callable, so such a file is loaded with
torch.load(weights_only=True), whose unpickler reconstructs nothing but tensors, plain
containers and the globals we allow. What we allow is listed before anything is unpickled
(torch.serialization.get_unsafe_globals_in_checkpoint reads the pickle's opcodes, it runs
none): ultralytics' and torch's own nn.Module classes and a few plain-data types (ALLOWED_DATA).
Anything else, an `os.system` or `builtins.eval` dressed as a checkpoint included, is refused
unless the user says --trust-pickle.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import ConversionError, Stage, first_line

INSTALL_HINT = "pip install 'myriad-blob[ultralytics]'"
# Plain data beside the weights: the trainer's hyper-parameter namespace, numpy scalars in metrics,
# paths in older train_args. Each is data only: constructing one runs no user-chosen code.
ALLOWED_DATA = (
    "ultralytics.utils.IterableSimpleNamespace",
    "builtins.set",
    "pathlib.PosixPath",
    "pathlib.WindowsPath",
    "numpy.dtype",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.dtypes.Float64DType",
    "numpy.dtypes.Float32DType",
    "numpy.dtypes.Int64DType",
)
# Modules whose nn.Module classes a checkpoint may hold: ultralytics' layers and tasks, torch's layers.
MODULE_PREFIXES = ("ultralytics.nn.", "torch.nn.modules.")
# Old checkpoints name modules that ultralytics has since moved (what its own loader maps).
RENAMED_MODULES = {
    "ultralytics.yolo.utils": "ultralytics.utils",
    "ultralytics.yolo.v8": "ultralytics.models.yolo",
    "ultralytics.yolo.data": "ultralytics.data",
}


def _fail(message: str) -> ConversionError:
    return ConversionError(Stage.LOAD, message)


def pickled_globals(path: Path) -> list[str] | None:
    """The globals (module.Name) the checkpoint's pickle names, read without unpickling; None when
    the file is not a torch.save zip."""
    import torch

    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # not a zip torch.save archive (a legacy pickle, damaged): not ours to judge here
        return None


def is_ultralytics_checkpoint(names: list[str] | None) -> bool:
    return bool(names) and any(name.startswith("ultralytics.") for name in names)


def _resolve(name: str):
    module_name, _, attribute = name.rpartition(".")
    for old, new in RENAMED_MODULES.items():
        if module_name == old or module_name.startswith(old + "."):
            module_name = new + module_name[len(old) :]
    try:
        return getattr(importlib.import_module(module_name), attribute, None)
    except ImportError:
        return None


def allowed_globals(names: list[str]) -> tuple[list, list[str]]:
    """(what torch.load may reconstruct, as (object, 'module.Name') pairs; the names refused)."""
    import torch

    allowed, refused = [], []
    for name in names:
        obj = _resolve(name) if (name in ALLOWED_DATA or name.startswith(MODULE_PREFIXES)) else None
        module_class = isinstance(obj, type) and issubclass(obj, torch.nn.Module)
        if obj is not None and (module_class or name in ALLOWED_DATA):
            allowed.append((obj, name))
        else:
            refused.append(name)
    return allowed, refused


def require_ultralytics(path: Path) -> None:
    import os

    # Quiet and offline: no settings banner, no update checks or downloads (nothing is fetched at run time).
    os.environ.setdefault("YOLO_VERBOSE", "False")
    os.environ.setdefault("YOLO_OFFLINE", "True")
    import importlib.util

    if importlib.util.find_spec("ultralytics") is None:
        raise _fail(
            f"{path} is an ultralytics checkpoint (`yolo train`'s best.pt), which needs the ultralytics "
            f"package: {INSTALL_HINT}"
        )
    try:
        import ultralytics  # noqa: F401  (its classes are what the checkpoint holds)
    except Exception as error:  # installed, but one of its own imports fails (OpenCV without libGL, ...)
        raise _fail(
            f"{path} is an ultralytics checkpoint, and the installed ultralytics cannot be imported "
            f"({first_line(error)}): reinstall it with {INSTALL_HINT}, and on a slim Linux install "
            "OpenCV's libGL (Debian: apt-get install libgl1 libglib2.0-0)"
        ) from error


def load_checkpoint(path: Path, names: list[str], trust_pickle: bool) -> dict:
    """The checkpoint dict, loaded with weights_only=True and the allow-list (or, with
    --trust-pickle, as ultralytics itself loads it)."""
    import torch

    require_ultralytics(path)
    allowed, refused = allowed_globals(names)
    if refused and not trust_pickle:
        listed = ", ".join(refused[:3]) + (f" and {len(refused) - 3} more" if len(refused) > 3 else "")
        raise _fail(
            f"{path} looks like an ultralytics checkpoint but also names {listed}, which is not one of "
            "ultralytics' model classes; loading it would run code from the file: re-save it with "
            "`yolo train`/`yolo export format=torchscript`, or pass --trust-pickle if you trust where it came from"
        )
    try:
        if refused:  # --trust-pickle: the user vouches for the file
            return torch.load(str(path), map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(allowed):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        raise _fail(f"{path} could not be loaded as an ultralytics checkpoint: {first_line(error)}") from error


def model_of(checkpoint, path: Path):
    """The trained model: the EMA weights the trainer keeps (its `model` key is None), else `model`."""
    import torch

    if isinstance(checkpoint, torch.nn.Module):  # torch.save(model) of an ultralytics model
        return checkpoint.float().eval()
    if not isinstance(checkpoint, dict):
        raise _fail(f"{path} holds a {type(checkpoint).__name__}, not an ultralytics checkpoint dict")
    model = checkpoint.get("ema") if checkpoint.get("ema") is not None else checkpoint.get("model")
    if not isinstance(model, torch.nn.Module):
        raise _fail(
            f"{path} is an ultralytics checkpoint without a model under 'ema' or 'model' "
            "(an optimizer-only or stripped file?): use the best.pt or last.pt that `yolo train` wrote"
        )
    return model.float().eval()
