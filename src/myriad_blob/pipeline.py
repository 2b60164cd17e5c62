"""The conversion: load -> export -> IR -> compile -> verify, with a report whatever happens."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

from . import __version__
from . import toolchain as toolchain_module
from .archive import camera_frame_type, camera_frame_types, nn_archive_config, write_nn_archive
from .artifacts import LoadedModel, ModelFormat
from .cache import BlobCache
from .cancel import Cancelled
from .cancel import check as check_cancelled
from .checks import VERIFY_CHECKS, CheckContext
from .compile import compile_blob, compile_settings, finish_query, start_query
from .errors import ConversionError, Stage
from .export_onnx import prepare_onnx
from .families import recognize
from .files import is_stream, remove_written, write_all_or_nothing, write_atomically
from .findings import judge
from .ir import FRONTENDS, convert_to_ir
from .limits import input_too_large
from .load import describe_source, load_model, sniff_format
from .onnx_prep import prepare
from .options import ConversionOptions, stage_key
from .preprocessing import PreprocessingMisfit, fit_preprocessing
from .report import ConversionReport
from .superblob import build_superblob, compile_every_shave_count
from .toolchain import FrontendWorker, WorkerPool


def _versions(*packages: str) -> dict:
    """Installed versions, read from package metadata: no import (torch's costs a second)."""
    return {"python": platform.python_version(), **{name: importlib.metadata.version(name) for name in packages}}


@dataclasses.dataclass
class Session:
    """What the conversions of one batch share: a work directory, warm legacy-toolchain workers,
    and the loads, ONNX exports and IRs that several variants have in common (variants that
    differ only in compile settings share one IR)."""

    workdir: Path
    workers: WorkerPool | None = None  # warm legacy (2021.4) workers
    frontend_workers: WorkerPool | None = None  # warm OpenVINO 2022.3 front ends
    _memo: dict = dataclasses.field(default_factory=dict)
    _locks: dict = dataclasses.field(default_factory=dict)
    _guard: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    # The TorchScript tracer and the exporters keep global state: one export at a time.
    torch_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def once(self, key: tuple, compute):
        """compute() the first time key is asked for, else the stored result; (result, reused)."""
        key = repr(key)  # options hold dicts; their repr is stable
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key in self._memo:
                return self._memo[key], True
            self._memo[key] = compute()  # a failure is not stored: the next variant tries again
            return self._memo[key], False

    def directory(self, key: tuple) -> Path:
        path = self.workdir / hashlib.sha256(repr(key).encode()).hexdigest()[:16]
        path.mkdir(parents=True, exist_ok=True)
        return path

    def worker(self):
        """A warm legacy worker for the job (None outside a batch: tools then run cold)."""
        return self.workers.borrow() if self.workers else contextlib.nullcontext()

    def frontend_worker(self):
        """A warm OpenVINO 2022.3 front end for the job (None outside a batch)."""
        return self.frontend_workers.borrow() if self.frontend_workers else contextlib.nullcontext()

    @classmethod
    def for_batch(cls, workdir: Path, toolchain, size: int) -> Session:
        return cls(workdir, WorkerPool(toolchain, size), WorkerPool(toolchain, size, FrontendWorker))

    def close(self) -> None:
        for pool in (self.workers, self.frontend_workers):
            if pool is not None:
                pool.close()


def convert(
    options: ConversionOptions,
    toolchain_dir: Path | None = None,
    session: Session | None = None,
    cache: BlobCache | None = None,
) -> ConversionReport:
    """Convert one model; the report says how it went. Raises nothing the user caused:
    a ConversionError ends up in report.error. The blob appears at options.output only on success."""
    check_cancelled()  # a batch's variant the cancel came before: none of it runs, no report
    key = None
    report = ConversionReport(options.to_dict())
    unwritable = unwritable_outputs(options)
    if unwritable:  # found before converting, not after
        report.fail(ConversionError(Stage.OUTPUT, unwritable))
        return report
    if cache is not None:
        with contextlib.suppress(ConversionError):  # no toolchain: the conversion below says so
            key = cache.key(options, toolchain_module.locate(toolchain_dir).versions)
        try:
            hit = cache.restore(key, options) if key else None
        except ConversionError as error:
            report.fail(error)
            return report
        if hit is not None:
            return hit
    started = time.perf_counter()
    try:
        if session is not None:
            _run(options, toolchain_dir, report, session)
        else:
            with tempfile.TemporaryDirectory(prefix="myriad-blob-") as tmp:
                _run(options, toolchain_dir, report, Session(Path(tmp)))
        report.status = "succeeded"
    except ConversionError as error:
        report.fail(error)
    except Cancelled as cancelled:  # SIGTERM or SIGINT: the work directory is gone; say so, then exit
        report.status = "failed"
        report.error = {"stage": cancelled.stage, "exit_code": cancelled.exit_code, "message": cancelled.message}
        report.total_duration_s = round(time.perf_counter() - started, 3)
        remove_written(written_outputs(report))
        with contextlib.suppress(ConversionError):
            report.write(options.report_json, options.report_markdown)
            cancelled.report = options.report_json
        raise
    except Exception as error:  # a bug of ours: still leave a report, then let the CLI show it
        report.status = "failed"
        report.error = {"stage": "internal", "exit_code": 1, "message": f"internal error: {error!r}"}
        report.write(options.report_json, options.report_markdown)
        raise
    finally:
        report.total_duration_s = round(time.perf_counter() - started, 3)
    if key and report.status == "succeeded" and not any(is_stream(p) for p in written_outputs(report)):
        # (the cache copies the files written; a stream cannot be read back). Before the report is
        # written, so that a cache that cannot be written is a warning in it: the blob stands.
        unstored = cache.store(key, options, report)
        if unstored:
            report.warnings.append(unstored)
    try:
        report.write(options.report_json, options.report_markdown)
    except ConversionError as error:
        if report.status == "succeeded":  # without its report, the conversion is not delivered
            remove_written(written_outputs(report))
            report.fail(error)
    return report


def check_preprocessing_fits(options: ConversionOptions, onnx_model) -> None:
    """--mean/--scale/--reverse-input-channels against the model's input shapes (the asked ones,
    else the ONNX model's own), before any toolchain runs: an options error, as the values alone
    are wrong. A wrong input name is left to the IR stage, which names the model's inputs."""
    asked = {
        spec.name or (onnx_model.inputs[0].name if onnx_model.inputs else None): spec.shape
        for spec in options.input_shapes
    }
    shapes = {t.name: tuple(asked.get(t.name, t.shape)) for t in onnx_model.inputs}
    try:
        fit_preprocessing(options.mean, options.scale, options.reverse_input_channels, shapes)
    except PreprocessingMisfit as misfit:
        if not misfit.naming:
            raise ConversionError(Stage.OPTIONS, misfit.message) from None


def check_declared_input_sizes(inputs, asked, declares: str) -> None:
    """An input shape the model file declares (the --input-shape flag's are checked with the
    options), against the Myriad X's memory, before anything of that size is allocated."""
    named = {spec.name for spec in asked}
    shapes = [(spec.name or "input", spec.shape) for spec in asked]
    shapes += [(t.name, t.shape) for t in inputs if not asked or (t.name not in named and None not in named)]
    for name, shape in shapes:
        too_large = input_too_large(shape)
        if too_large:
            raise ConversionError(
                Stage.IR, f"input {name!r}, {declares}: {too_large}; pass --input-shape with a smaller shape"
            )


def written_outputs(report: ConversionReport) -> list[Path]:
    """The files a successful conversion wrote besides its report."""
    return [
        Path(section["path"])
        for section in (report.blob, report.nn_archive, report.depthai_json, report.superblob)
        if section
    ]


def unwritable_outputs(options: ConversionOptions) -> str | None:
    """Why the blob or the report could not be written, known before any work is done."""
    if str(options.output) == "-":
        return "--output -: the blob is binary; give a file path (the report can go to standard output)"
    for flag, path in (("--output", options.output), ("--report", options.report_json)):
        if str(path) == "-":
            continue
        if os.path.isdir(path):
            return f"{flag} {path} is a directory: give a file path"
        if is_stream(path):  # written through: the target itself must be writable, not its directory
            if not os.access(path, os.W_OK):
                return f"{flag} {path} is not writable"
            continue
        directory = Path(os.path.realpath(path)).parent
        while not directory.exists():
            directory = directory.parent
        if not directory.is_dir():
            return f"{flag} {path}: {directory} is not a directory"
        if not os.access(directory, os.W_OK | os.X_OK):
            return f"{flag} {path}: {directory} is not writable"
    return None


def report_options_error(options: ConversionOptions, error: ConversionError) -> ConversionReport:
    """The report for options that could not even be parsed (written where it can be)."""
    report = ConversionReport(options.to_dict())
    report.fail(error)
    with contextlib.suppress(ConversionError):  # the options error is the one to show
        report.write(options.report_json, options.report_markdown)
    return report


def _run(options: ConversionOptions, toolchain_dir: Path | None, report: ConversionReport, session: Session) -> None:
    toolchain = toolchain_module.locate(toolchain_dir)
    report.toolchain = {"dir": str(toolchain.root), **toolchain.versions}
    conversion = Conversion(options, toolchain, report, session, session.directory(("variant", options)))
    loaded = conversion.load()
    onnx_model = conversion.export(loaded)
    ir, prepared = conversion.make_ir(onnx_model)
    compiled, support = conversion.compile(ir, prepared)
    data, info = conversion.verify(loaded, ir, prepared, compiled)
    conversion.deliver(data, info, ir, support)


@dataclasses.dataclass
class Conversion:
    """One conversion, stage by stage: each method runs one stage (report.stage times it), fills
    the report section the stage owns, and returns plain data for the next. Results a batch can
    share are memoized in the session under a key of the options each stage reads (the options
    table's stage column) after its predecessors' keys."""

    options: ConversionOptions
    toolchain: toolchain_module.Toolchain
    report: ConversionReport
    session: Session
    workdir: Path
    key: tuple = ()  # the memo key so far: grows stage by stage
    family_model: object = None  # a model family's model (families/base.FamilyModel): the files it adds

    def _next_key(self, step: str, *extra) -> tuple:
        self.key = self.key + stage_key(self.options, step) + extra
        return self.key

    def load(self):
        options, report = self.options, self.report
        with report.stage("load", **_versions("onnx")) as stage:
            source = describe_source(options.input)
            key = self._next_key("load", source.sha256)
            loaded, stage.reused = self.session.once(key, lambda: load_any(options, source))
            if loaded.module is not None:
                stage.tools.update(_versions("torch"))
        report.source = {
            "path": loaded.source.path,
            "format": loaded.source.format,
            "size": loaded.source.size,
            "sha256": loaded.source.sha256,
        }
        model = loaded.family_model
        if model is not None:  # a model family's (families/): the options it implies, its report section
            self.family_model = model
            self.options, defaulted = model.adjust_options(options)
            check_declared_input_sizes((), self.options.input_shapes, model.input_shape_source)
            report.family_sections[model.key] = model.report_section(self.options, defaulted)
        return loaded

    def export(self, loaded):
        options, report, session = self.options, self.report, self.session
        key = self._next_key("export")

        def export():
            with session.torch_lock:
                return prepare_onnx(loaded, options, session.directory(key))

        if loaded.onnx_path is not None:
            report.skip("export", "the input is ONNX already")
            onnx_model, _ = session.once(key, export)
        else:
            with report.stage(
                "export", **_versions("torch", "onnx"), exporter="torch.export" if options.new_export else "torchscript"
            ) as stage:
                onnx_model, stage.reused = session.once(key, export)
                stage.tools["opset"] = onnx_model.opset
                for opset, why in onnx_model.opset_fallbacks:
                    report.warnings.append(
                        f"the exporter failed at ONNX opset {opset} ({why}); exported at opset {onnx_model.opset}"
                    )
                if onnx_model.requested_opset != onnx_model.opset:
                    report.warnings.append(
                        f"exported at ONNX opset {onnx_model.opset}: the exporter could not "
                        f"convert to opset {onnx_model.requested_opset}"
                    )
        check_preprocessing_fits(options, onnx_model)
        report.onnx = {
            "opset": onnx_model.opset,
            "exported": onnx_model.exported,
            "opset_fallbacks": [{"opset": o, "error": why} for o, why in onnx_model.opset_fallbacks],
            "inputs": [t.to_dict() for t in onnx_model.inputs],
            "outputs": [t.to_dict() for t in onnx_model.outputs],
            # Where --output-names can cut: every tensor a node computes, with its node's op.
            "tensors": [
                {"name": tensor, "op": onnx_model.nodes.get(node)}
                for tensor, node in onnx_model.producers.items()
                if onnx_model.nodes.get(node) != "Constant"
            ],
        }
        return onnx_model

    def make_ir(self, onnx_model):
        options, report, session, toolchain = self.options, self.report, self.session, self.toolchain
        prep_key = self._next_key("ir.prepare")
        ir_key = self._next_key("ir")

        def prepared_for(frontend: str):
            key = prep_key + (frontend,)
            return session.once(
                key,
                lambda: prepare(
                    onnx_model, options.input_shapes, options.output_names, session.directory(key) / "onnx", frontend
                ),
            )[0]

        def make_ir():
            with session.worker() as worker, session.frontend_worker() as frontend_worker:
                return convert_to_ir(
                    prepared_for, options, toolchain, session.directory(ir_key), worker, frontend_worker
                )

        with report.stage("ir", **_versions("onnxruntime", "onnxslim")) as stage:
            check_declared_input_sizes(onnx_model.inputs, options.input_shapes, "as the ONNX model declares it")
            ir, stage.reused = session.once(ir_key, make_ir)
            prepared = prepared_for(ir.frontend)
            stage.tools.update(frontend_tools(ir.frontend, toolchain))
        if ir.frontend_fallback:
            report.warnings.append(f"the IR was made by {FRONTENDS[ir.frontend].title}: {ir.frontend_fallback}")
        report.preprocessing = ir.preprocessing
        report.ir = {
            "version": ir.version,
            "frontend": ir.frontend,
            "frontend_fallback": ir.frontend_fallback,
            "preparation": [step.to_dict() for step in prepared.steps],
            "rewrites": [{"rule": rule, "layers": count} for rule, count in ir.rewrites.items()],
            "inputs": [t.to_dict() for t in ir.inputs],
            "outputs": [t.to_dict() for t in ir.outputs],
        }
        return ir, prepared

    def compile(self, ir, prepared):
        options, report, toolchain = self.options, self.report, self.toolchain
        report.compile_settings = compile_settings(options, ir)
        with report.stage(
            "compile",
            **{
                "openvino": toolchain.versions.get("openvino"),
                "inference-engine": toolchain.versions.get("inference_engine_build"),
                "g++": toolchain.versions.get("gxx"),
            },
        ):
            query = start_query(ir, toolchain)
            query_result = functools.cache(lambda: finish_query(query, ir, prepared.model))
            try:
                compiled = compile_blob(
                    ir,
                    query_result,
                    options,
                    toolchain,
                    self.workdir / "model.blob",
                    origins=(prepared.model, prepared.reference),
                )
            finally:
                support = query_result()
                report.layers = support.to_dict()
        report.compile_settings = compiled.settings
        return compiled, support

    def verify(self, loaded, ir, prepared, compiled):
        """The verify checks (checks.VERIFY_CHECKS, then the model family's own), each returning
        findings; one policy (findings.judge) turns them into warnings or, with --strict, the
        failure. Returns (blob bytes, BlobInfo)."""
        options, report, toolchain = self.options, self.report, self.toolchain
        torch_reference = loaded.module is not None and not options.output_names
        family_checks = loaded.family_model.checks() if loaded.family_model is not None else ()
        with report.stage(
            "verify",
            **_versions("torch" if torch_reference else "onnxruntime"),
            **{"myriad-blob": __version__, "openvino-cpu": toolchain.versions.get("openvino")},
        ):
            context = CheckContext(options, toolchain, self.session, report, loaded, ir, prepared, compiled)
            findings = []
            for check in VERIFY_CHECKS + tuple(family_checks):
                findings += check.run(context)
            report.findings = [finding.to_dict() for finding in findings]
            report.warnings.extend(judge(findings, options.strict))
        return context.data, context.info

    def deliver(self, data: bytes, info, ir, support) -> None:
        """Write the blob and the files beside it, all or nothing, and their report sections."""
        options, report = self.options, self.report
        check_cancelled()  # a batch's variant that got here after a SIGTERM delivers nothing
        superblob = blobs = None
        if options.superblob:  # compiled before anything is written: a failure leaves no blob behind
            with report.stage("compile"):  # the SuperBlob's 16 compiles count as compiling
                blobs = compile_every_shave_count(ir, support, options, self.toolchain, self.workdir / "superblob")
                superblob = build_superblob(options.nshaves, blobs)
        model = self.family_model
        heads = [head for head in [model.archive_head()] if head] if model is not None else []
        config = (
            nn_archive_config(options.output.stem, options.output.name, info, options.reverse_input_channels, heads)
            if options.nn_archive
            else None
        )
        depthai_json = model.depthai_v2_config(info.inputs[0].shape) if model is not None else None
        outputs = [(options.output, "the blob", lambda: write_atomically(options.output, data))]
        if config is not None:
            outputs.append(
                (
                    options.nn_archive_path,
                    "the NN Archive",
                    lambda: write_nn_archive(options.nn_archive_path, data, options.output.name, config),
                )
            )
        if depthai_json is not None:
            outputs.append(
                (
                    options.depthai_json_path,
                    "depthai's JSON",
                    lambda: write_atomically(options.depthai_json_path, json.dumps(depthai_json, indent=2).encode()),
                )
            )
        if superblob is not None:
            outputs.append(
                (options.superblob_path, "the SuperBlob", lambda: write_atomically(options.superblob_path, superblob))
            )
        write_all_or_nothing(outputs)
        # The first image input's frame type (the planar one when the blob has no image input).
        frame_types, planar = (
            camera_frame_types(info, options.reverse_input_channels),
            camera_frame_type(options.reverse_input_channels),
        )
        report.blob = {
            "path": str(options.output),
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "header": info.to_dict(),
            "camera_frame_type": next(iter(frame_types.values()), planar),
            "camera_frame_types": frame_types,
        }
        if config is not None:
            report.nn_archive = {"path": str(options.nn_archive_path), "config": config}
        if depthai_json is not None:
            report.depthai_json = {"path": str(options.depthai_json_path), "config": depthai_json}
        if superblob is not None:
            report.superblob = {
                "path": str(options.superblob_path),
                "size": len(superblob),
                "base_shaves": options.nshaves,
                "blob_sizes": {str(n): len(b) for n, b in blobs.items()},
            }


def load_any(options: ConversionOptions, source) -> LoadedModel:
    """The model: a model family's own loader for a file of a family (families.recognize, from the
    pickle's opcodes), else load.load_model's. The format is sniffed first, so a family sees only
    a torch.save file whose zip sizes were checked."""
    fmt = sniff_format(options.input)
    family = recognize(options.input) if fmt == ModelFormat.PICKLE else None
    if family is None:
        return load_model(options, source, fmt)
    model = family.load(options.input, options)
    return LoadedModel(dataclasses.replace(source, format=family.format), module=model.module, family_model=model)


def frontend_tools(frontend: str, toolchain) -> dict:
    """The IR stage's tool versions: the front end that made the IR."""
    return {"frontend": FRONTENDS[frontend].title, **FRONTENDS[frontend].tools(toolchain)}
