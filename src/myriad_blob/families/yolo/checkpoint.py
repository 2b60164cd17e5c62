"""Loading a `best.pt` that `yolo train` wrote, without running code from the file.

ultralytics' trainer pickles its own nn.Module classes (DetectionModel, Conv, C2f, Detect, ...)
under the checkpoint's `ema` key (and `model` for older versions), beside plain data: train_args,
metrics, dates. A pickle can name any importable callable and call it with arguments from the file,
so what the file would do is read from its opcodes first (pickle_scan: nothing is unpickled): its
module classes may only be created without their constructor and given their state (what pickling
an nn.Module writes), and the rest must be tensors, containers and plain data. An allowed class
REDUCEd with arguments (AutoBackend("payload.pt") loads another file), an `os.system` or a
`builtins.getattr` dressed as a checkpoint: refused, with the name, unless the user says
--trust-pickle. Only then does torch.load(weights_only=True) run, with those classes allowed.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ...errors import ConversionError, Stage, first_line
from ...pickle_scan import RENAMED_MODULES, Refusal, allowed_globals, listed, scan_file

INSTALL_HINT = "pip install 'myriad-blob[ultralytics]'"
# Modules whose nn.Module classes a checkpoint may hold: ultralytics' layers and model classes,
# torch's layers. Not ultralytics.nn.autobackend (it loads files) nor text_model (it downloads).
MODULE_PREFIXES = ("ultralytics.nn.modules.", "ultralytics.nn.tasks.", "torch.nn.modules.")


# Old checkpoints name modules that ultralytics has since moved (what its own loader maps).
RENAMED_MODULES.update(
    {
        "ultralytics.yolo.utils": "ultralytics.utils",
        "ultralytics.yolo.v8": "ultralytics.models.yolo",
        "ultralytics.yolo.data": "ultralytics.data",
    }
)


def _fail(message: str) -> ConversionError:
    return ConversionError(Stage.LOAD, message)


def scan_checkpoint(path: Path) -> tuple[list[str], list[Refusal]] | None:
    """(the names the checkpoint's pickles use, what the policy refuses), read without unpickling;
    None when the file is not a torch.save file we can read."""
    _quiet_offline()  # the scan imports the module classes the file names (ultralytics' own)
    try:
        found, refused = scan_file(path, MODULE_PREFIXES)
    except Exception:  # damaged or not a pickle: not ours to judge here (the generic loader says why)
        return None
    return list(dict.fromkeys(name for name, _ in found)), refused


def is_ultralytics_checkpoint(scan: tuple[list[str], list[Refusal]] | None) -> bool:
    return scan is not None and any(name.startswith("ultralytics.") for name in scan[0])


def _quiet_offline() -> None:
    """Before ultralytics is first imported: no settings banner, no update checks or downloads
    (nothing is fetched at run time)."""
    os.environ.setdefault("YOLO_VERBOSE", "False")
    os.environ.setdefault("YOLO_OFFLINE", "True")


def require_ultralytics(path: Path) -> None:
    _quiet_offline()

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


def load_checkpoint(path: Path, scan: tuple[list[str], list[Refusal]], trust_pickle: bool) -> dict:
    """The checkpoint dict, loaded with weights_only=True and its classes allowed once the scan found
    nothing refused (or, with --trust-pickle, as ultralytics itself loads it)."""
    import torch

    require_ultralytics(path)
    names, refused = scan
    if refused and not trust_pickle:
        raise _fail(
            f"{path} looks like an ultralytics checkpoint but also holds {listed(refused)}, which is not "
            "data nor one of ultralytics' model classes rebuilt from its state; loading it would run code "
            "from the file: re-save it with `yolo train`/`yolo export format=torchscript`, or pass "
            "--trust-pickle if you trust where it came from"
        )
    try:
        if refused:  # --trust-pickle: the user vouches for the file
            return torch.load(str(path), map_location="cpu", weights_only=False)
        allowed = allowed_globals(names)
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
