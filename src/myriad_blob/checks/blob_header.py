"""The blob header check: the compiler's blob read back (depthai's format) against the IR.

A malformed blob, or inputs and outputs that are not the IR's, fail the conversion (blob.py says
why and what to change): there is nothing to warn about in a blob that cannot be used.
"""

from __future__ import annotations

from ..blob import BlobFormatError, parse_blob, verify_blob
from ..errors import ConversionError, Stage
from ..findings import Finding
from .base import Check, CheckContext


def check_blob_header(context: CheckContext) -> list[Finding]:
    context.data = context.compiled.path.read_bytes()
    try:
        context.info = parse_blob(context.data)
    except BlobFormatError as error:
        raise ConversionError(Stage.VERIFY, f"the compiler wrote a malformed blob: {error}") from error
    verify_blob(context.info, context.ir.inputs, context.ir.outputs, context.compiled.settings)
    return []


CHECK = Check("blob header", check_blob_header)
