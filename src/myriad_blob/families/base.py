"""The model family protocol: what a family of models (ultralytics' detectors are the first) plugs into.

The pipeline knows families only through these hooks, in this order:
- Family.recognize(path): is the file one of the family's, told from its content without running
  any of it (a pickle's opcodes, never its unpickling).
- Family.load(path, options) -> FamilyModel: the family's own safe loader; the module it gives is
  what is exported.
- FamilyModel.adjust_options(options): the options the model implies (input shape, preprocessing,
  a sample), and its report section (report_section): the report's key is Family.key.
- FamilyModel.input_names / output_names: the names the model's consumer looks for (a parser's).
- FamilyModel.checks(): verify checks after the generic ones (checks/), returning findings.
- FamilyModel.archive_head() and depthai_v2_config(input_shape): what the camera is told (the NN
  Archive's head, depthai v2's JSON beside the blob), or None.
- Family.render_markdown(section): its section of the Markdown report, from the JSON section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ..checks import Check
from ..options import ConversionOptions


class FamilyModel(Protocol):
    key: str  # its family's Family.key: the report's section
    module: object  # the torch nn.Module to export
    input_shape_source: str  # how adjust_options' input shape is named in an error ("as the checkpoint's ... makes it")

    @property
    def input_names(self) -> list[str]: ...

    @property
    def output_names(self) -> list[str]: ...

    def adjust_options(self, options: ConversionOptions) -> tuple[ConversionOptions, bool]:
        """(the options the model implies, whether its preprocessing was applied by default)."""

    def report_section(self, options: ConversionOptions, defaulted: bool) -> dict: ...

    def checks(self) -> tuple[Check, ...]: ...

    def archive_head(self) -> dict | None: ...

    def depthai_v2_config(self, input_shape: tuple) -> dict | None: ...


class Family(Protocol):
    key: str  # the report's section for the family's models
    format: str  # the source format the report names ("ultralytics checkpoint")

    def recognize(self, path: Path) -> bool: ...

    def load(self, path: Path, options: ConversionOptions) -> FamilyModel: ...

    def render_markdown(self, section: dict) -> list[str]: ...
