"""The verify checks, in the order they run: a registry, so a new check is its own module and one
line here. Each returns findings (findings.py), from which the warnings, the verdict and
--strict all follow; a model family adds its own checks after these (families/)."""

from __future__ import annotations

from . import blob_header, fp16_range, fp16_stages, numeric_outputs, speed_estimate, stage_count
from .base import Check, CheckContext

VERIFY_CHECKS: tuple[Check, ...] = (
    blob_header.CHECK,
    numeric_outputs.CHECK,
    fp16_range.CHECK,
    fp16_stages.CHECK,  # FP16 where the chip computes: the plugin's own stages, and hard frames
    stage_count.CHECK,  # the compile's stage count, and a layer copied once per row
    speed_estimate.CHECK,  # after the checks of the numbers: their faults come first for --strict
)

__all__ = ["VERIFY_CHECKS", "Check", "CheckContext"]
