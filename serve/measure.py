"""What the promotion gate measures of a candidate checkpoint: its weights' sha256 (which
model is live), its metric on the test split (whether it may replace the live one) and, for a
candidate picked by latency (`serve.select`), how fast it answers as served."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from hpo.serve.model import TextClassifier, checkpoint_folder
from hpo.trainables.config import DataConfig
from hpo.trainables.costs import median_ms
from hpo.trainables.data import load_test_split
from hpo.trainables.metrics import compute_metrics


def checkpoint_sha256(checkpoint: str) -> str:
    """The sha256 of the checkpoint's weights (every *.safetensors / *.bin file, in order)."""
    folder = Path(checkpoint_folder(checkpoint))
    digest = hashlib.sha256()
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    for path in files:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):  # noqa: B023
                digest.update(block)
    return digest.hexdigest()


def metric_on_test_split(
    checkpoint: str, data: DataConfig, metric: str, runtime: str = "torch"
) -> float | None:
    """`metric` of a checkpoint, run as `runtime` serves it, on the `data` section's test
    split; None without one."""
    classifier = TextClassifier(checkpoint, runtime=runtime)
    examples = load_test_split(data, classifier.labels)
    if examples is None:
        return None
    pairs = examples.pairs or [None] * len(examples)
    order = np.argsort([len(t) for t in examples.texts])  # similar lengths pad little
    probabilities = np.zeros((len(examples), len(classifier.labels)))
    for start in range(0, len(order), 64):
        chunk = order[start : start + 64]
        predictions = classifier.predict(
            [examples.texts[i] for i in chunk], [pairs[i] for i in chunk]
        )
        for index, prediction in zip(chunk, predictions, strict=True):
            probabilities[index] = [prediction.probabilities[label] for label in classifier.labels]
    metrics = compute_metrics(np.log(np.clip(probabilities, 1e-12, 1.0)), examples.labels)
    return metrics[metric]


def served_latency_ms(
    checkpoint: str, data: DataConfig, runtime: str, threads: int, repeats: int = 30
) -> float:
    """The median time of one-text predictions (tokenization included) of a checkpoint, run
    as the service runs it, on texts of the test split (else the validation split)."""
    classifier = TextClassifier(checkpoint, device="cpu", threads=threads, runtime=runtime)
    examples = load_test_split(data, classifier.labels)
    if examples is None:
        examples = load_test_split(
            data.model_copy(update={"test": data.validation}), classifier.labels
        )
    texts = examples.texts[:repeats]
    pairs = (examples.pairs or [None] * len(examples))[:repeats]
    one_each = [([text], [pair]) for text, pair in zip(texts, pairs, strict=True)]
    return median_ms(lambda request: classifier.predict(*request), one_each, rounds=1)
