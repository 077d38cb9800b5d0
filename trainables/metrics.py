"""Validation metrics, computed with scikit-learn from logits and labels.

`f1` is the F1 of the positive class (label 1) for two classes, as GLUE reports it for MRPC,
and macro-F1 for more classes; `f1_macro` is always macro-F1.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

METRICS = ("accuracy", "f1", "f1_macro", "mcc", "loss")


def compute_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """All of METRICS for one evaluation; `loss` is the mean cross-entropy."""
    predictions = logits.argmax(axis=-1)
    num_classes = logits.shape[-1]
    loss = torch.nn.functional.cross_entropy(
        torch.tensor(logits, dtype=torch.float32), torch.tensor(labels, dtype=torch.long)
    ).item()
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
        "loss": float(loss),
    }
