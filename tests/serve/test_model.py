"""The served classifier without Ray: predictions, pairs, truncation, explanations."""

from __future__ import annotations

import pytest

from hpo.serve.model import TextClassifier


@pytest.fixture(scope="module")
def classifier(tiny_model: str) -> TextClassifier:
    return TextClassifier(tiny_model, device="cpu")


def test_predictions_are_distributions_over_the_labels(classifier: TextClassifier) -> None:
    predictions = classifier.predict(["a fine film", "dull"], None)
    assert len(predictions) == 2
    for prediction in predictions:
        assert set(prediction.probabilities) == set(classifier.labels)
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction.score == max(prediction.probabilities.values())
        assert prediction.probabilities[prediction.label] == prediction.score
        assert not prediction.truncated


def test_batch_equals_one_by_one(classifier: TextClassifier) -> None:
    texts = ["short", "a somewhat longer sentence about a film", "ok"]
    together = classifier.predict(texts)
    for text, batched in zip(texts, together, strict=True):
        alone = classifier.predict([text])[0]
        assert alone.score == pytest.approx(batched.score, abs=1e-5)


def test_pairs_and_singles_mix(classifier: TextClassifier) -> None:
    mixed = classifier.predict(["one", "two"], ["first pair", None])
    assert mixed[0].probabilities != classifier.predict(["one"])[0].probabilities
    assert mixed[1].score == pytest.approx(classifier.predict(["two"])[0].score, abs=1e-5)


def test_long_texts_are_truncated_and_flagged(classifier: TextClassifier) -> None:
    prediction = classifier.predict(["word " * 1000])[0]
    assert prediction.truncated


def test_explanation_scores_every_word_token(classifier: TextClassifier) -> None:
    explanation = classifier.explain("a gorgeous witty film", steps=8)
    assert [t.token for t in explanation.tokens] == ["a", "gorgeous", "witty", "film"]
    assert any(t.score != 0 for t in explanation.tokens)
    assert explanation.method == "integrated_gradients"
    assert explanation.prediction.label in classifier.labels
    # integrated gradients: attributions sum to f(x) - f(baseline), up to the delta
    assert explanation.convergence_delta < 0.05


def test_the_torch_runtime_on_a_cpu_packs_the_linear_layers(classifier: TextClassifier) -> None:
    assert classifier.linear_kernels == "onednn_packed"
    assert classifier.predict(["a fine film"])[0].probabilities


def test_the_int8_runtime_quantizes_the_linear_layers_and_answers_alike(
    classifier: TextClassifier, tiny_model: str
) -> None:
    import torch

    int8 = TextClassifier(tiny_model, device="cpu", runtime="int8")
    kinds = {type(module) for module in int8.model.modules()}
    assert torch.ao.nn.quantized.dynamic.Linear in kinds and torch.nn.Linear not in kinds
    assert int8.linear_kernels == "int8_dynamic"
    texts = ["a fine film", "dull and long", "ok"]
    for fast, exact in zip(int8.predict(texts), classifier.predict(texts), strict=True):
        assert fast.score == pytest.approx(exact.score, abs=0.05)
    # explanations differentiate the float weights (int8 layers have no gradients)
    assert int8.twin().explain("a fine film", steps=4).tokens
