"""Validation metrics, computed with scikit-learn from logits and labels.

`f1` is the F1 of the positive class (label 1) for two classes, as GLUE reports it for MRPC,
and macro-F1 for more classes; `f1_macro` is always macro-F1. Reading a sweep file needs only
the names, so scikit-learn is imported when metrics are computed.
"""

from __future__ import annotations

import numpy as np

METRICS = ("accuracy", "f1", "f1_macro", "mcc", "loss")
COSTS = ("latency_ms", "params", "size_mb")
"""What serving a model costs (hpo.trainables.costs measures them): objectives that `metric`
may list after a validation metric, all minimised."""


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """The mean cross-entropy of integer labels under softmax(logits)."""
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return float(-log_probabilities[np.arange(len(labels)), labels].mean())


def compute_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """All of METRICS for one evaluation; `loss` is the mean cross-entropy."""
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    predictions = logits.argmax(axis=-1)
    num_classes = logits.shape[-1]
    labels_seen = list(range(num_classes))
    f1_macro = f1_score(labels, predictions, average="macro", labels=labels_seen, zero_division=0)
    if num_classes == 2:
        f1 = f1_score(labels, predictions, average="binary", pos_label=1, zero_division=0)
    else:
        f1 = f1_macro
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "f1": float(f1),
        "f1_macro": float(f1_macro),
        "mcc": float(matthews_corrcoef(labels, predictions)),
        "loss": cross_entropy(logits, labels),
    }
