"""How far a converted model's numbers are from the original's: one definition of each measure,
which the numeric check, its diagnosis and the checked rewrites all use."""

from __future__ import annotations

import numpy as np


def max_abs_error(reference: np.ndarray, actual: np.ndarray) -> float:
    """max |actual - reference| over same-shaped arrays (0 for empty ones; inf/NaN propagate)."""
    if not np.size(reference):
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        return float(np.max(np.abs(np.asarray(actual, np.float64) - np.asarray(reference, np.float64))))


def peak_relative_error(reference: np.ndarray, actual: np.ndarray) -> float:
    """The largest absolute error relative to the reference's peak, max |actual - reference| /
    max |reference|: a small value's own relative error says nothing of a tensor. The absolute
    error when the reference is all zeros; 0 for empty arrays."""
    error = max_abs_error(reference, actual)
    peak = float(np.max(np.abs(reference))) if np.size(reference) else 0.0
    return error / peak if peak > 0 else error


def cosine(reference: np.ndarray, actual: np.ndarray) -> float:
    """The cosine of the two flattened tensors; 1 for two zero tensors, 0 for one."""
    reference, actual = np.asarray(reference, np.float64).ravel(), np.asarray(actual, np.float64).ravel()
    with np.errstate(invalid="ignore", over="ignore"):
        norms = np.linalg.norm(reference) * np.linalg.norm(actual)
        if norms > 0:
            return float(np.dot(reference, actual) / norms)
    return 1.0 if max_abs_error(reference, actual) == 0 else 0.0
