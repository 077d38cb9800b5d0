"""hpo's validation metrics agree with scikit-learn's on any labels and logits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score, log_loss, matthews_corrcoef

from hpo.trainables.metrics import METRICS, compute_metrics


@st.composite
def evaluations(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of 1-60 examples over 2-6 classes, some classes often missing."""
    classes = draw(st.integers(2, 6))
    size = draw(st.integers(1, 60))
    seed = draw(st.integers(0, 2**32 - 1))
    generator = np.random.default_rng(seed)
    used = draw(st.integers(1, classes))  # labels drawn from the first `used` classes only
    labels = generator.integers(0, used, size)
    logits = generator.normal(size=(size, classes)).astype(np.float32)
    if draw(st.booleans()):  # a model that predicts one class for everything
        logits[:, draw(st.integers(0, classes - 1))] += 100
    return logits, labels


def scikit_learn_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    classes = logits.shape[-1]
    predictions = logits.argmax(axis=-1)
    every = list(range(classes))
    f1_macro = f1_score(labels, predictions, average="macro", labels=every, zero_division=0)
    f1 = (
        f1_score(labels, predictions, average="binary", pos_label=1, zero_division=0)
        if classes == 2
        else f1_macro
    )
    probabilities = np.exp(logits.astype(np.float64) - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    # log_loss clips probabilities at float64's eps: compare the loss only where it has not
    clipped = probabilities.min() < np.finfo(np.float64).eps
    return {
        "accuracy": accuracy_score(labels, predictions),
        "f1": f1,
        "f1_macro": f1_macro,
        "mcc": matthews_corrcoef(labels, predictions),
        **({} if clipped else {"loss": log_loss(labels, probabilities, labels=every)}),
    }


# scikit-learn warns when labels and predictions hold one class only, and still answers
@pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")
@settings(max_examples=300, deadline=None)
@given(evaluations())
@example((np.array([[0.0, 1.0], [0.0, 1.0]], np.float32), np.array([1, 1])))  # mcc undefined
@example((np.array([[1.0, 0.0, 0.0]], np.float32), np.array([0])))  # one example
def test_metrics_equal_scikit_learn(evaluation: tuple[np.ndarray, np.ndarray]) -> None:
    logits, labels = evaluation
    ours = compute_metrics(logits, labels)
    reference = scikit_learn_metrics(logits, labels)
    assert set(ours) == set(METRICS)
    for name in reference:
        assert ours[name] == pytest.approx(reference[name], abs=1e-6), name
