"""Stage 1, load: tell the model file's format by its content, and load it.

ONNX files are only inspected here; PyTorch files are loaded into an nn.Module in this
(current) Python. Full-model pickles run code when loaded, so they are refused unless the
user says --trust-pickle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib
import io
import json
import re
import sys
import zipfile
from pathlib import Path

from . import pickle_scan
from .artifacts import LoadedModel, ModelFormat, SourceInfo
from .errors import ConversionError, Stage, first_line
from .limits import check_zip_sizes, external_data_outside
from .options import ConversionOptions


def _fail(message: str) -> ConversionError:
    return ConversionError(Stage.LOAD, message)


def describe_source(path: Path) -> SourceInfo:
    if not path.exists():
        raise _fail(f"{path} does not exist: check --input")
    if not path.is_file():
        raise _fail(f"{path} is not a file: --input takes a model file")
    data = path.read_bytes()
    if not data:
        raise _fail(f"{path} is empty (0 bytes): re-export or re-download the model")
    return SourceInfo(str(path), len(data), hashlib.sha256(data).hexdigest())


def sniff_format(path: Path) -> str:
    """The model format, from the file's bytes (never its extension)."""
    with path.open("rb") as handle:
        head = handle.read(64)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                check_zip_sizes(path, archive)  # from the declared sizes, before anything inflates
        except zipfile.BadZipFile:
            raise _fail(f"{path} is a damaged zip archive (truncated?): save the PyTorch model again") from None
        if any(n.endswith("/archive_format") for n in names):
            return ModelFormat.TORCH_EXPORT
        if any("/code/__torch__" in n for n in names) and any(n.endswith("/constants.pkl") for n in names):
            return ModelFormat.TORCHSCRIPT
        if any(n.endswith("/data.pkl") for n in names):
            return ModelFormat.PICKLE  # refined to state dict / checkpoint when loaded
        raise _fail(
            f"{path} is a zip archive but not one PyTorch wrote: expected ONNX, TorchScript, .pt2 or torch.save output"
        )
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return ModelFormat.PICKLE  # torch.save's legacy (non-zip) format
    return _sniff_onnx(path, head)


def _sniff_onnx(path: Path, head: bytes) -> str:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError):
        model = None
    if model is not None and model.ir_version > 0 and model.opset_import and len(model.graph.node) > 0:
        outside = external_data_outside(model, path)  # before anything reads external data
        if outside:
            raise _fail(f"{path}: {outside}")
        return ModelFormat.ONNX
    if _looks_like_text(head):
        raise _fail(
            f"{path} is a text file, not a model: point --input at the .onnx/.pt file itself (a Git LFS pointer? run `git lfs pull`)"
        )
    raise _fail(
        f"{path} is not a model this tool reads (ONNX, TorchScript, torch.export .pt2, torch.save); "
        "if it is one, it is truncated or corrupt: export it again"
    )


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)


def load_model(options: ConversionOptions, source: SourceInfo | None = None, fmt: str | None = None) -> LoadedModel:
    """source: the file's SourceInfo, fmt: its sniff_format, when the caller has them already
    (saves hashing the file or reading an ONNX model twice)."""
    path = options.input
    source = source or describe_source(path)
    fmt = fmt or sniff_format(path)
    if fmt == ModelFormat.ONNX:
        return LoadedModel(dataclasses.replace(source, format=fmt), onnx_path=path)

    import torch

    if fmt == ModelFormat.TORCHSCRIPT:
        module = _torch_call(lambda: torch.jit.load(str(path), map_location="cpu"), path, fmt)
    elif fmt == ModelFormat.TORCH_EXPORT:
        _refuse_pickled_pt2(path, options)
        module = _eval_only_class()(_torch_call(lambda: torch.export.load(str(path)).module(), path, fmt))
    else:
        fmt, module = _load_pickle(path, options)
    if not isinstance(module, torch.nn.Module):
        raise _fail(f"{path} holds a {type(module).__name__}, not a PyTorch model (nn.Module)")
    return LoadedModel(dataclasses.replace(source, format=fmt), module=module)


# A torch.export archive's members that are data: the program (JSON), raw weights and constants
# with their JSON configs, version stamps. Sample inputs are a torch.save pickle, judged by
# pickle_scan. Anything else (pickled payloads, custom or opaque objects, AOTInductor libraries,
# the legacy pickled constants) runs code when torch.export.load reads it.
PT2_DATA = re.compile(
    r"[^/]+/(archive_format|archive_version|byteorder|\.data/[\w.]+|models/[\w.-]+\.json|extra/[\w.-]+\.json"
    r"|data/weights/(weight_\d+|[\w.-]+_config\.json)|data/constants/(tensor_\d+|[\w.-]+_config\.json)"
    r"|data/sample_inputs/[\w.-]+\.pt)"
)


def pt2_code(path: Path) -> list[str]:
    """What in a torch.export archive (.pt2) would run code when loaded: pickled weights or
    constants (`use_pickle` in their configs: torch.export.load unpickles them with
    weights_only=False), members that are not data, sample inputs that are not plain tensors."""
    found = []
    try:
        members = pickle_scan.zip_members(path)  # what torch.export.load reads, and only that
    except ValueError as error:
        return [f"the archive itself ({error})"]
    for name, data in members.items():
        if not PT2_DATA.fullmatch(name):
            found.append(f"{name} (not a tensor or JSON member)")
        elif name.endswith("_config.json"):
            try:
                config = json.loads(data).get("config", {})
            except ValueError:
                found.append(f"{name} (not JSON)")
                continue
            found += [f"{key} in {name} (pickled)" for key, meta in config.items() if meta.get("use_pickle")]
        elif name.endswith(".pt"):
            try:
                _, refused = pickle_scan.scan_file(io.BytesIO(data))
            except Exception:
                refused = [pickle_scan.Refusal(name, "unreadable")]
            found += [f"{refusal} in {name}" for refusal in refused]
    return found


def _refuse_pickled_pt2(path: Path, options: ConversionOptions) -> None:
    code = pt2_code(path)
    if code and not options.trust_pickle:
        shown = "; ".join(code[:3]) + (f" and {len(code) - 3} more" if len(code) > 3 else "")
        raise _fail(
            f"{path} is a torch.export program whose archive holds pickled or code-bearing parts ({shown}), "
            "which torch.export.load would unpickle and so run code from the file: save it again with plain "
            "tensors, export to ONNX or TorchScript, or pass --trust-pickle if you trust where it came from"
        )


@contextlib.contextmanager
def user_code_importable():
    """As `python -m`: modules named by --model-class (or a trusted pickle) resolve from the current
    directory, for the time it takes to import them. Nothing else sees it on sys.path (the action
    runs with `python -P` so that a repository's files cannot shadow ours)."""
    added = "" not in sys.path
    if added:
        sys.path.insert(0, "")
    try:
        yield
    finally:
        if added and "" in sys.path:
            sys.path.remove("")


@functools.cache
def _eval_only_class():
    """Built on first use, so torch is imported only for PyTorch input."""
    import torch

    class EvalOnly(torch.nn.Module):
        """A torch.export program's module refuses train()/eval(), which exporters call: it is
        fixed in inference mode already, so mode switches are no-ops here."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.training = False

        def train(self, mode: bool = True):
            return self

        def forward(self, *args):
            return self.inner(*args)

    return EvalOnly


def _torch_call(load, path: Path, fmt: str):
    try:
        return load()
    except Exception as error:  # torch raises many types here; the message is what the user needs
        raise _fail(f"{path} could not be loaded as {fmt}: {first_line(error)}") from error


# Where checkpoints keep the model when --model-key is not given: torch/timm/Lightning/ultralytics conventions.
CHECKPOINT_KEYS = ("model", "state_dict", "model_state_dict", "ema", "net")


def _load_pickle(path: Path, options: ConversionOptions):
    """A state dict or checkpoint: what its pickle would do is read from its opcodes first
    (pickle_scan); only tensors, containers and plain data (argparse's hyper-parameters, numpy
    scalars, paths) load without --trust-pickle, with torch.load(weights_only=True)."""
    import torch

    try:
        found, refused = pickle_scan.scan_file(path)
    except Exception as error:  # malformed opcodes, a damaged zip
        raise _fail(f"{path} could not be read by torch.load (truncated or corrupt?): {first_line(error)}") from error
    if refused:
        return _model_from(_load_trusted_pickle(path, options, refused), path, options, True)
    allowed = pickle_scan.allowed_globals([n for n, _ in found])
    try:
        with torch.serialization.safe_globals(allowed):
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        raise _fail(f"{path} could not be read by torch.load (truncated or corrupt?): {first_line(error)}") from error
    return _model_from(obj, path, options, False)


def _model_from(obj, path: Path, options: ConversionOptions, trusted: bool):
    """The model in what torch.load returned: a module, a state dict, or a checkpoint dict holding either."""
    import torch

    fmt = ModelFormat.PICKLE if trusted else ModelFormat.STATE_DICT
    if isinstance(obj, dict) and not _is_state_dict(obj):
        keys = [options.model_key] if options.model_key else CHECKPOINT_KEYS
        key = next(
            (k for k in keys if k in obj and (isinstance(obj[k], torch.nn.Module) or _is_state_dict(obj[k]))), None
        )
        if key is None:
            listed = ", ".join(sorted(map(str, obj))[:8])
            looked = (
                f"key {options.model_key!r}" if options.model_key else f"any of the keys {', '.join(CHECKPOINT_KEYS)}"
            )
            raise _fail(
                f"{path} is a checkpoint dict without a model or state dict under {looked} "
                f"(keys: {listed}): pass --model-key"
            )
        fmt, obj = (ModelFormat.PICKLE if trusted else ModelFormat.CHECKPOINT), obj[key]
    if isinstance(obj, torch.nn.Module):
        return ModelFormat.PICKLE, obj
    if not _is_state_dict(obj):
        raise _fail(f"{path} holds a {type(obj).__name__}, not a state dict or a model")
    if fmt == ModelFormat.PICKLE:
        fmt = ModelFormat.CHECKPOINT
    if not options.model_class:
        raise _fail(
            f"{path} is a {fmt} (weights only): pass --model-class package.module:ClassName "
            "so the weights can be loaded into your model's class"
        )
    module = instantiate_model_class(options.model_class)
    try:
        module.load_state_dict(obj, strict=True)
    except RuntimeError as error:
        raise _fail(f"the weights in {path} do not fit {options.model_class}: {first_line(error)}") from error
    return fmt, module


def _is_state_dict(obj) -> bool:
    import torch

    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _load_trusted_pickle(path: Path, options: ConversionOptions, refused: list[pickle_scan.Refusal]):
    import torch

    if not options.trust_pickle:
        raise _fail(
            f"{path} is a full-model pickle (it holds {pickle_scan.listed(refused, how=False)}, not only tensors), and "
            "loading one runs code from the file: save a state dict or TorchScript instead, or pass "
            "--trust-pickle if you trust where it came from"
        )
    try:
        with user_code_importable():
            return torch.load(str(path), map_location="cpu", weights_only=False)
    except (AttributeError, ModuleNotFoundError, ImportError) as error:
        raise _fail(
            f"the pickle {path} needs a class that cannot be imported here ({first_line(error)}): "
            "run from the directory holding its module, or save a state dict and pass --model-class"
        ) from error
    except Exception as error:
        raise _fail(f"{path} could not be unpickled: {first_line(error)}") from error


def instantiate_model_class(spec: str):
    """Import 'package.module:ClassName' and construct it with no arguments."""
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise _fail(f"--model-class must look like package.module:ClassName, got {spec!r}")
    try:
        with user_code_importable():
            module = importlib.import_module(module_name)
    except Exception as error:
        raise _fail(
            f"cannot import module {module_name!r} for --model-class: {first_line(error)} (is it on PYTHONPATH?)"
        ) from error
    cls = getattr(module, class_name, None)
    if cls is None:
        raise _fail(f"module {module_name!r} has no class {class_name!r} (--model-class)")
    try:
        return cls()
    except Exception as error:
        raise _fail(
            f"{spec}() failed: {first_line(error)}; --model-class needs a class constructible with no arguments"
        ) from error
