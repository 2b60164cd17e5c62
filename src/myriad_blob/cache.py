"""A content-addressed cache of converted blobs and their reports.

Key: the model file's sha256 (and, for --model-class, its module's source; for --sample, the
sample's), every option that changes the blob or its report, and the pinned toolchain's and
myriad-blob's versions. A hit copies the blob (and NN Archive, SuperBlob) and rewrites the report for the
new paths, saying it came from the cache. Nothing here imports torch: a hit is quick.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
from pathlib import Path

from . import __version__
from .options import ConversionOptions
from .report import ConversionReport, write_atomically

# Options that do not change what is produced, only where it goes.
_PATH_FIELDS = ("input", "output", "report")
# Files a conversion may write beside the blob: (report field, ConversionOptions path property, name in the cache).
_ARTIFACTS = (("nn_archive", "nn_archive_path", "model.tar.xz"), ("superblob", "superblob_path", "model.superblob"))


def default_cache_dir() -> Path:
    if os.environ.get("MYRIAD_BLOB_CACHE_DIR"):
        return Path(os.environ["MYRIAD_BLOB_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "myriad-blob" / "blobs"


def _file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _model_class_source(spec: str | None) -> str | None:
    """The class's module source, so editing the class misses the cache (found without importing it)."""
    if not spec or ":" not in spec:
        return None
    try:
        found = importlib.util.find_spec(spec.partition(":")[0])
    except (ImportError, ValueError):
        return None
    return _file_sha256(Path(found.origin)) if found and found.origin else None


class BlobCache:
    def __init__(self, root: Path):
        self.root = root

    def key(self, options: ConversionOptions, toolchain_versions: dict) -> str | None:
        """None when the model file cannot be read (the conversion will say why)."""
        model = _file_sha256(options.input)
        if model is None:
            return None
        settings = {k: v for k, v in options.to_dict().items() if k not in _PATH_FIELDS}
        material = {"model": model, "model_class_source": _model_class_source(options.model_class),
                    "sample": _file_sha256(options.sample) if options.sample else None, "options": settings,
                    "toolchain": toolchain_versions, "myriad-blob": __version__}
        return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()

    def _entry(self, key: str) -> Path:
        return self.root / key[:2] / key

    def restore(self, key: str, options: ConversionOptions) -> ConversionReport | None:
        entry = self._entry(key)
        if not (entry / "report.json").exists() or not (entry / "model.blob").exists():
            return None
        started = time.perf_counter()
        data = json.loads((entry / "report.json").read_text())
        report = ConversionReport.from_dict(data)
        if any(getattr(report, field) and not (entry / name).exists() for field, _, name in _ARTIFACTS):
            return None  # an incomplete entry is a miss; the conversion will store a whole one
        original = report.blob["path"]
        write_atomically(options.output, (entry / "model.blob").read_bytes())
        report.options = options.to_dict()
        report.source["path"] = str(options.input)
        report.blob["path"] = str(options.output)
        for field, path_property, name in _ARTIFACTS:
            if getattr(report, field):
                destination = getattr(options, path_property)
                write_atomically(destination, (entry / name).read_bytes())
                getattr(report, field)["path"] = str(destination)
        report.cache = {"hit": True, "key": key, "converted_as": original,
                        "restore_s": round(time.perf_counter() - started, 4)}
        report.write(options.report_json, options.report_markdown)
        return report

    def store(self, key: str, options: ConversionOptions, report: ConversionReport) -> None:
        entry = self._entry(key)
        partial = entry.with_name(entry.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        shutil.copyfile(options.output, partial / "model.blob")
        for field, path_property, name in _ARTIFACTS:
            if getattr(report, field):
                shutil.copyfile(getattr(options, path_property), partial / name)
        report.cache = {"hit": False, "key": key}
        (partial / "report.json").write_text(json.dumps(report.to_dict(), indent=2))
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(partial, entry)  # readers see a whole entry or none
