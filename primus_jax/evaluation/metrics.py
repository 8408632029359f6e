"""Classification metrics and the summary statistics used across trials.

Accuracy is micro accuracy (the reference's); macro-F1 averages over the classes present in the
truth or the predictions (``absent="exclude"``, scikit-learn's set); balanced accuracy is the
mean recall over classes present in the truth; the standard error over trials is
``std(ddof=1) / sqrt(n)``, None for one trial (JSON has no NaN). Functions take integer label
arrays and return Python floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np


def _as_labels(y: object, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer array, got {arr.dtype} {arr.shape}")
    return arr.astype(np.int64)


def _check_pair(y_true: object, y_pred: object) -> tuple[np.ndarray, np.ndarray]:
    t, p = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in length")
    if t.size == 0:
        raise ValueError("metrics of an empty set are undefined")
    return t, p


def accuracy(y_true: object, y_pred: object) -> float:
    """Fraction of correct predictions (micro accuracy)."""
    t, p = _check_pair(y_true, y_pred)
    return float(np.mean(t == p))


def confusion_matrix(y_true: object, y_pred: object, num_classes: int) -> np.ndarray:
    """Counts matrix M with ``M[i, j]`` = windows of true class i predicted as class j.

    Args:
        y_true: (N,) labels in ``[0, num_classes)``.
        y_pred: (N,) predictions in ``[0, num_classes)``.
        num_classes: C.

    Returns:
        (C, C) int64 matrix whose entries sum to N.
    """
    t, p = _check_pair(y_true, y_pred)
    for arr, name in ((t, "y_true"), (p, "y_pred")):
        if arr.min() < 0 or arr.max() >= num_classes:
            raise ValueError(f"{name} has labels outside [0, {num_classes})")
    flat = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def per_class_f1(confusion: np.ndarray) -> np.ndarray:
    """Per-class F1 = 2 TP / (2 TP + FP + FN) from a confusion matrix; NaN where 0/0."""
    cm = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(cm)
    denom = 2 * tp + (cm.sum(0) - tp) + (cm.sum(1) - tp)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), np.nan)


def macro_f1(
    y_true: object,
    y_pred: object,
    num_classes: int,
    *,
    absent: Literal["exclude", "zero"] = "exclude",
) -> float:
    """Unweighted mean of per-class F1.

    Args:
        y_true: (N,) labels.
        y_pred: (N,) predictions.
        num_classes: C.
        absent: how to treat classes absent from both ``y_true`` and ``y_pred`` (see module doc).

    Returns:
        Macro-F1 in [0, 1].
    """
    f1 = per_class_f1(confusion_matrix(y_true, y_pred, num_classes))
    if absent == "exclude":
        return float(np.mean(f1[~np.isnan(f1)]))
    if absent == "zero":
        return float(np.mean(np.nan_to_num(f1, nan=0.0)))
    raise ValueError(f"absent must be 'exclude' or 'zero', got {absent!r}")


def balanced_accuracy(y_true: object, y_pred: object, num_classes: int) -> float:
    """Mean per-class recall over the classes that occur in ``y_true``."""
    cm = confusion_matrix(y_true, y_pred, num_classes).astype(np.float64)
    support = cm.sum(1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def classification_metrics(y_true: object, y_pred: object, num_classes: int) -> dict[str, float]:
    """The metrics reported per trial: accuracy, macro-F1 (``absent="exclude"``), balanced acc."""
    return {
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred, num_classes),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred, num_classes),
    }


def standard_error(values: Sequence[float]) -> float | None:
    """Standard error of the mean, ``std(ddof=1) / sqrt(n)``; ``None`` when n < 2."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {v.shape}")
    if v.size < 2:
        return None
    return float(np.std(v, ddof=1) / math.sqrt(v.size))


def summarize(values: Sequence[float]) -> dict[str, object]:
    """``{"mean", "stderr", "trials"}`` over per-trial values (the report's metric record)."""
    v = [float(x) for x in values]
    if not v:
        raise ValueError("cannot summarise zero trials")
    return {"mean": float(np.mean(v)), "stderr": standard_error(v), "trials": v}
