"""Validation metrics from logits and labels, computed from one confusion matrix with numpy.

`f1` is the F1 of the positive class (label 1) for two classes, as GLUE reports it for MRPC,
and macro-F1 for more classes; `f1_macro` is always macro-F1. Both give 0 to a class that
neither the labels nor the predictions hold, and `mcc` is 0 where it is undefined, as
scikit-learn does (`zero_division=0`); tests/trainables/test_metrics.py checks every figure
against scikit-learn. Not scikit-learn itself: importing it (and scipy) costs every trial
process ~70 MB of resident memory for these five numbers.
"""

from __future__ import annotations

import numpy as np

METRICS = ("accuracy", "f1", "f1_macro", "mcc", "loss")
COSTS = ("latency_ms", "params", "size_mb")
"""What serving a model costs (hpo.trainables.costs measures them): objectives that `metric`
may list after a validation metric, all minimised."""


def mode_of(metric: str) -> str:
    """Whether a validation metric is maximised or minimised."""
    return "min" if metric == "loss" else "max"


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """The mean cross-entropy of integer labels under softmax(logits)."""
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return float(-log_probabilities[np.arange(len(labels)), labels].mean())


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """counts[true, predicted] over `classes` classes."""
    pairs = labels.astype(np.int64) * classes + predictions.astype(np.int64)
    return np.bincount(pairs, minlength=classes * classes).reshape(classes, classes)


def f1_per_class(counts: np.ndarray) -> np.ndarray:
    """2·TP / (2·TP + FP + FN) per class; 0 for a class absent from labels and predictions."""
    true_positives = np.diag(counts).astype(np.float64)
    denominator = counts.sum(axis=0) + counts.sum(axis=1)  # (TP + FP) + (TP + FN)
    return np.divide(
        2 * true_positives,
        denominator,
        out=np.zeros_like(true_positives),
        where=denominator > 0,
    )


def matthews(counts: np.ndarray) -> float:
    """The multi-class Matthews correlation (Gorodkin's R_K); 0 where it is undefined."""
    samples = float(counts.sum())
    correct = float(np.trace(counts))
    true_totals = counts.sum(axis=1).astype(np.float64)
    predicted_totals = counts.sum(axis=0).astype(np.float64)
    covariance = correct * samples - true_totals @ predicted_totals
    spread = (samples**2 - predicted_totals @ predicted_totals) * (
        samples**2 - true_totals @ true_totals
    )
    return float(covariance / np.sqrt(spread)) if spread > 0 else 0.0


def compute_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """All of METRICS for one evaluation; `loss` is the mean cross-entropy."""
    classes = logits.shape[-1]
    counts = confusion_matrix(labels, logits.argmax(axis=-1), classes)
    f1 = f1_per_class(counts)
    f1_macro = float(f1.mean())
    return {
        "accuracy": float(np.trace(counts) / max(counts.sum(), 1)),
        "f1": float(f1[1]) if classes == 2 else f1_macro,
        "f1_macro": f1_macro,
        "mcc": matthews(counts),
        "loss": cross_entropy(logits, labels),
    }
