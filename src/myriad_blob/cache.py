"""A content-addressed cache of converted blobs and their reports.

Key: the model file's sha256 and every file it brings along (ONNX external data), the user
code a conversion imports (--model-class's module, or the modules a trusted pickle names: their
whole package), the sample's sha256, every option that changes the blob or its report, the
versions of the packages that make the ONNX and check it (torch, onnx, onnxslim, onnxruntime),
and the pinned toolchain's and myriad-blob's versions. A hit copies the blob (and NN Archive,
SuperBlob), after checking the stored blob's sha256, and rewrites the report for the new paths,
saying it came from the cache. Nothing here imports torch: a hit is quick.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pickletools
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from . import __version__
from .errors import ConversionError, Stage
from .files import remove_written, write_atomically
from .limits import check_zip_sizes, external_data_locations, external_data_outside
from .load import user_code_importable
from .options import ConversionOptions
from .report import ConversionReport

# Options that do not change what is produced, only where it goes.
_PATH_FIELDS = ("input", "output", "report")
# Files a conversion may write beside the blob: (report field, ConversionOptions path property, name in the cache).
_ARTIFACTS = (
    ("nn_archive", "nn_archive_path", "model.tar.xz"),
    ("superblob", "superblob_path", "model.superblob"),
    ("depthai_json", "depthai_json_path", "model.json"),
)


def default_cache_dir() -> Path:
    if os.environ.get("MYRIAD_BLOB_CACHE_DIR"):
        return Path(os.environ["MYRIAD_BLOB_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "myriad-blob" / "blobs"


def _file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


# Packages whose versions change the ONNX model or how it is checked.
_CONVERTER_PACKAGES = ("torch", "onnx", "onnxslim", "onnxruntime", "numpy", "luxonis-ml", "ultralytics")


def _converter_versions() -> dict:
    versions = {}
    for name in _CONVERTER_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@functools.cache
def converter_source_digest() -> str:
    """sha256 over the converter's own code and toolchain scripts: a rule added or a stage changed
    between two runs of the same version must not restore the old blob."""
    package = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".cpp", ".sh", ".txt") and p.is_file()):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _module_sources(module_names) -> dict | None:
    """sha256 of the user code beside each named module, found as the conversion will import it
    (from the current directory first): every .py file in the directory it is found in, and every
    package (a directory with __init__.py) there, recursively. A class imports its own helpers
    (model.py with layers.py, or a package of them), so all of them change the model; finding
    them without importing runs no user code. None when a module cannot be found."""
    roots = set()
    with user_code_importable():
        for name in sorted(set(module_names)):
            try:
                found = importlib.util.find_spec(name.partition(".")[0])
            except (ImportError, ValueError):
                return None
            if found is None or not found.origin:
                return None
            if found.origin in ("built-in", "frozen"):
                continue
            origin = Path(found.origin)
            roots.add(origin.parent.parent if origin.name == "__init__.py" else origin.parent)
    digest = {}
    for root in sorted(roots):
        files = sorted(root.glob("*.py"))
        for package in sorted(p for p in root.iterdir() if (p / "__init__.py").is_file()):
            files += sorted(package.rglob("*.py"))
        hasher = hashlib.sha256()
        for file in files:
            hasher.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes())
        digest[str(root)] = hasher.hexdigest()
    return digest


def pickled_modules(path: Path) -> list[str]:
    """The modules a pickle (torch.save's zip or legacy format) names in its globals, read with
    pickletools: nothing is unpickled. torch's own and the standard library's are left out."""
    try:
        with zipfile.ZipFile(path) as archive:
            check_zip_sizes(path, archive)  # a zip bomb is refused at load, with the reason
            data = next((archive.read(n) for n in archive.namelist() if n.endswith("/data.pkl")), b"")
    except zipfile.BadZipFile:
        data = path.read_bytes()
    except ConversionError:
        return []
    modules, strings = set(), []
    try:
        for opcode, argument, _ in pickletools.genops(data):
            if opcode.name == "GLOBAL":
                modules.add(argument.split(" ", 1)[0])
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                modules.add(strings[-2])
            if isinstance(argument, str):
                strings.append(argument)
    except Exception:  # not a pickle we can walk: the key then holds the file's hash alone
        pass
    standard = {"torch", "collections", "builtins", "argparse", "numpy", "_codecs", "copyreg"}
    return sorted(m for m in modules if m.partition(".")[0] not in standard)


def _onnx_external_data(path: Path) -> dict | None:
    """sha256 of each external-data file an ONNX model points at (not inside the model file);
    None for a model whose external data is outside its folder (its conversion fails at load,
    saying so: nothing outside is read here either)."""
    if path.suffix.lower() != ".onnx":
        return None
    try:
        import onnx

        model = onnx.load_model(str(path), load_external_data=False)
    except Exception:
        return None
    if external_data_outside(model, path):
        return None
    locations = {location for _, location in external_data_locations(model)}
    return {location: _file_sha256(path.parent / location) for location in sorted(locations)}


class BlobCache:
    def __init__(self, root: Path):
        self.root = root

    def key(self, options: ConversionOptions, toolchain_versions: dict) -> str | None:
        """None when the model file cannot be read (the conversion will say why)."""
        model = _file_sha256(options.input)
        if model is None:
            return None
        settings = {k: v for k, v in options.to_dict().items() if k not in _PATH_FIELDS}
        user_modules = [options.model_class.partition(":")[0]] if options.model_class else []
        if options.trust_pickle:
            user_modules += pickled_modules(options.input)
        sources = _module_sources(user_modules) if user_modules else {}
        if sources is None:
            return None  # user code that cannot be found: convert (and fail there with the reason)
        material = {
            "model": model,
            "external_data": _onnx_external_data(options.input),
            "user_code": sources,
            "sample": _file_sha256(options.sample) if options.sample else None,
            "samples": {name: _file_sha256(path) for name, path in options.sample_by_name.items()},
            "options": settings,
            "converter": _converter_versions(),
            "converter_code": converter_source_digest(),
            "toolchain": toolchain_versions,
            "myriad-blob": __version__,
        }
        return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()

    def _entry(self, key: str) -> Path:
        return self.root / key[:2] / key

    def restore(self, key: str, options: ConversionOptions) -> ConversionReport | None:
        started = time.perf_counter()
        entry = self._entry(key)
        found = self._read(entry)
        if found is None:
            return None
        report, blob = found
        original = report.blob["path"]
        written = []
        try:
            self._restore_files(entry, options, report, blob, written)
        except OSError as error:
            remove_written(written)  # all or nothing, as a conversion
            raise ConversionError(
                Stage.OUTPUT, f"cannot write the cached files to {options.output} and beside it: {error.strerror}"
            ) from error
        report.cache = {
            "hit": True,
            "key": key,
            "converted_as": original,
            "restore_s": round(time.perf_counter() - started, 4),
        }
        try:
            report.write(options.report_json, options.report_markdown)
        except ConversionError:
            remove_written(written)
            raise
        return report

    @staticmethod
    def _read(entry: Path) -> tuple[ConversionReport, bytes] | None:
        """The entry's report and blob, or None for a miss. A damaged entry (a report that is not
        JSON or not a report, a file missing, a blob whose sha256 differs) is a miss too, and is
        removed so that the conversion stores a whole one: it is a cache, never a reason to fail."""
        if not (entry / "report.json").is_file() or not (entry / "model.blob").is_file():
            if entry.exists() or entry.is_symlink():
                _discard(entry)
            return None
        try:
            report = ConversionReport.from_dict(json.loads((entry / "report.json").read_text()))
            blob = (entry / "model.blob").read_bytes()
            whole = (
                hashlib.sha256(blob).hexdigest() == report.blob["sha256"]
                and isinstance(report.blob["path"], str)
                and all((entry / name).is_file() for field, _, name in _ARTIFACTS if getattr(report, field))
            )
            report.to_markdown()  # what a hit writes must render: a report damaged inside fails here, not there
        except Exception:  # anything a damaged file can raise, as JSON or as a report
            whole = False
        if not whole:
            _discard(entry)
            return None
        return report, blob

    @staticmethod
    def _restore_files(entry: Path, options: ConversionOptions, report: ConversionReport, blob: bytes, written: list):
        write_atomically(options.output, blob)
        written.append(Path(options.output))
        report.options = options.to_dict()
        report.source["path"] = str(options.input)
        report.blob["path"] = str(options.output)
        for field, path_property, name in _ARTIFACTS:
            if getattr(report, field):
                destination = getattr(options, path_property)
                write_atomically(destination, (entry / name).read_bytes())
                written.append(Path(destination))
                getattr(report, field)["path"] = str(destination)

    def store(self, key: str, options: ConversionOptions, report: ConversionReport) -> str | None:
        """Keep the conversion's files under its key; None, or why they could not be kept (a
        warning for the report: the conversion's result stands without its cache entry)."""
        entry = self._entry(key)
        partial = None
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            # A directory of this writer's own: two conversions of the same key never share one.
            partial = Path(tempfile.mkdtemp(dir=entry.parent, prefix=entry.name + ".partial-"))
            shutil.copyfile(options.output, partial / "model.blob")
            for field, path_property, name in _ARTIFACTS:
                if getattr(report, field):
                    shutil.copyfile(getattr(options, path_property), partial / name)
            report.cache = {"hit": False, "key": key}
            (partial / "report.json").write_text(json.dumps(report.to_dict(), indent=2))
        except OSError as error:
            report.cache = None
            if partial is not None:
                shutil.rmtree(partial, ignore_errors=True)
            where = f" ({error.filename})" if error.filename else ""
            return (
                f"the blob cache {self.root} cannot be written: {error.strerror or error}{where}; this conversion "
                "was not cached (give a writable --cache-dir or $MYRIAD_BLOB_CACHE_DIR, or pass --no-cache)"
            )
        except BaseException:  # cancelled (SIGTERM) half-way: no partial entry left behind
            if partial is not None:
                shutil.rmtree(partial, ignore_errors=True)
            raise
        _discard(entry)
        try:
            os.replace(partial, entry)  # readers see a whole entry or none
        except OSError:  # another writer's identical entry landed first
            shutil.rmtree(partial, ignore_errors=True)
        return None


def _discard(entry: Path) -> None:
    """Remove a cache entry, whatever stands in its place (a directory, a file, a link)."""
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            entry.unlink()
