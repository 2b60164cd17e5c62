"""The numeric check: the IR (the blob's weights, FP16) on OpenVINO's CPU plugin against the
original model on the same input, output by output (numeric.py). When an output misses, the
layer-by-layer diagnosis says where the runtimes part and whose fault it is.

It also measures every layer's range on that input for the FP16 range check (fp16_range.py),
which reads this check's run from context.results["numeric"].
"""

from __future__ import annotations

from ..findings import Finding
from ..numeric import NumericCheck, Tolerances, numeric_check
from .base import Check, CheckContext


def check_outputs(context: CheckContext) -> list[Finding]:
    options, loaded, prepared, compiled = context.options, context.loaded, context.prepared, context.compiled
    # The original computes the reference: the PyTorch module, or ONNX Runtime on the ONNX model
    # with the asked shapes (and, with --output-names, cut where the blob is cut).
    torch_reference = loaded.module is not None and not options.output_names
    with context.session.worker() as worker:
        check = numeric_check(
            loaded.module if torch_reference else None,
            prepared.reference,
            context.ir,
            context.toolchain,
            input_type=compiled.settings["input_type"],
            sample=options.samples,
            worker=worker,
            tolerances=Tolerances(options.max_relative_error, options.min_cosine),
            origins=(prepared.model, prepared.reference),
            input_types=compiled.settings["tensor_types"],
            layouts=compiled.settings["tensor_layouts"],
        )
    context.report.numeric = check.to_dict()
    context.results["numeric"] = check
    return outputs_findings(check)


def outputs_findings(check: NumericCheck) -> list[Finding]:
    """An output that misses, with the diagnosis' cause; --strict's message adds the first FP16
    overflow, which together with the miss says most."""
    if check.outputs_passed:
        return []
    missed = [o for o in check.outputs if not o.passed]
    failed = ", ".join(o.name for o in missed)
    cause = (
        check.diagnosis.message
        if check.diagnosis is not None and check.diagnosis.cause != "error"
        else (
            "the layer-by-layer comparison could not say where"
            + (f" ({check.diagnosis.message})" if check.diagnosis else "")
        )
    )
    if check.truncated:  # the known cause comes first: the blob's U8 input cannot hold what the model was fed
        names = ", ".join(check.truncated)
        cause = (
            f"input(s) {names} are U8 in the blob but were fed values that are not integers in 0..255, which "
            f"a U8 input truncates: convert with --input-type {check.truncated[0]}=FP16 (or feed U8 pixel values)"
            f"; {cause}"
        )
    message = f"the converted model's outputs differ from the original's ({failed}: {check.summary()}); {cause}"
    overflow = check.fp16.overflow_summary() if check.fp16 is not None and check.fp16.overflows else None
    reason = "numeric check: " + "; ".join(
        f"output {o.name} differs from the original's" + (f" ({o.note})" if o.note else "") for o in missed
    )
    return [Finding("numeric", reason, message, strict_message=message + (f"; {overflow}" if overflow else ""))]


CHECK = Check("numeric", check_outputs)
