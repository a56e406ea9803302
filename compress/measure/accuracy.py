"""Accuracy of a model's test predictions: Wilson intervals, macro F1, and agreement with the
teacher's predictions (fidelity, exact McNemar)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compress.common.stats import macro_f1, mcnemar_exact, wilson_interval


@dataclass(frozen=True)
class AccuracyStats:
    accuracy: float
    accuracy_ci_low: float
    accuracy_ci_high: float
    f1_macro: float
    fidelity: float | None
    mcnemar_p: float | None


def accuracy_stats(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, reference: np.ndarray | None = None
) -> AccuracyStats:
    """Accuracy with its Wilson interval; against a reference model's predictions also
    fidelity (agreement) and the exact McNemar p-value of the accuracy difference."""
    correct = y_pred == y_true
    low, high = wilson_interval(int(correct.sum()), len(correct))
    against = reference_stats(y_true, y_pred, reference) if reference is not None else {}
    return AccuracyStats(
        accuracy=float(correct.mean()),
        accuracy_ci_low=low,
        accuracy_ci_high=high,
        f1_macro=macro_f1(y_true, y_pred, n_classes),
        fidelity=against.get("fidelity"),
        mcnemar_p=against.get("mcnemar_p"),
    )


def reference_stats(y_true: np.ndarray, y_pred: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Agreement with the reference model's predictions and the exact McNemar p-value."""
    return {"fidelity": float(np.mean(y_pred == reference)),
            "mcnemar_p": mcnemar_exact(reference == y_true, y_pred == y_true)}
