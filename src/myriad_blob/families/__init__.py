"""Model families: models the converter knows more about than their tensors (their head, their
parser on the camera, their preprocessing, their own checks). Each is a package implementing
base.Family; this registry is the one place that names them, and the pipeline and the report
only call their hooks. A new family is its package and one line here."""

from __future__ import annotations

from pathlib import Path

from . import yolo
from .base import Family, FamilyModel

FAMILIES: tuple[Family, ...] = (yolo.FAMILY,)


def recognize(path: Path) -> Family | None:
    """The family a model file belongs to, told from its content (nothing of it runs), or None."""
    return next((family for family in FAMILIES if family.recognize(path)), None)


__all__ = ["FAMILIES", "Family", "FamilyModel", "recognize"]
