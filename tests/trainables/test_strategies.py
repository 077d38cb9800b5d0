"""Fine-tuning strategies on the tiny model: which weights train, that frozen ones stay put,
and that a LoRA trial's checkpoints are plain merged models that resume exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from hpo.trainables.config import Hyperparameters
from hpo.trainables.encoding import EncodedData
from hpo.trainables.loop import evaluate, train_model
from hpo.trainables.strategies import apply_strategy, trainable_parameters
from tests.trainables.recording import RecordingSession, job_for


def _model(tiny_model: str):
    return AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=2)


def _trainable_names(model) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_bitfit_trains_only_biases_and_the_head(tiny_model: str) -> None:
    model = apply_strategy(_model(tiny_model), Hyperparameters(strategy="bitfit"))
    names = _trainable_names(model)
    assert {"classifier.weight", "classifier.bias"} <= names
    assert all(n.endswith("bias") or n.startswith("classifier.") for n in names)
    assert "bert.encoder.layer.0.attention.self.query.bias" in names


def test_freeze_keeps_the_embeddings_and_the_lowest_layers_fixed(tiny_model: str) -> None:
    model = apply_strategy(_model(tiny_model), Hyperparameters(strategy="freeze", freeze_layers=1))
    names = _trainable_names(model)
    assert not any("embeddings" in n or ".layer.0." in n for n in names)
    assert any(".layer.1." in n for n in names) and "classifier.weight" in names
    default = apply_strategy(_model(tiny_model), Hyperparameters(strategy="freeze"))
    assert _trainable_names(default) == names  # None: half of the 2 layers
    with pytest.raises(ValueError, match="only 2 encoder layers"):
        apply_strategy(_model(tiny_model), Hyperparameters(strategy="freeze", freeze_layers=3))


def test_lora_trains_adapters_and_the_head_only(tiny_model: str) -> None:
    full = trainable_parameters(_model(tiny_model))
    model = apply_strategy(_model(tiny_model), Hyperparameters(strategy="lora", lora_r=4))
    names = _trainable_names(model)
    assert any("lora_A" in n for n in names) and any("classifier" in n for n in names)
    assert not any("lora" not in n and "classifier" not in n for n in names)
    assert 0 < trainable_parameters(model) < full / 10
    wider = apply_strategy(
        _model(tiny_model),
        Hyperparameters(strategy="lora", lora_r=4, lora_targets="query,key,value,dense"),
    )
    assert trainable_parameters(wider) > trainable_parameters(model)
    with pytest.raises(ValueError, match="lora_targets='nonexistent'"):
        apply_strategy(
            _model(tiny_model), Hyperparameters(strategy="lora", lora_targets="nonexistent")
        )


@pytest.mark.parametrize("strategy", ["freeze", "bitfit"])
def test_frozen_weights_do_not_move_in_training(
    strategy: str, tiny_model: str, sst2_slice: EncodedData, tmp_path: Path
) -> None:
    session = RecordingSession(tmp_path)
    hp = Hyperparameters(strategy=strategy, learning_rate=1e-2, batch_size=16, freeze_layers=1)
    train_model(hp, job_for(tiny_model, max_epochs=1, evals_per_epoch=1), sst2_slice, session)
    before = load_file(Path(tiny_model) / "model.safetensors")
    after = load_file(Path(session.checkpoints[-1]) / "model.safetensors")
    frozen = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(before[frozen], after[frozen])
    moved = "bert.encoder.layer.1.output.dense.bias"
    assert not torch.equal(before[moved], after[moved])
    assert session.reports[-1]["trainable_params"] < trainable_parameters(_model(tiny_model))


def test_a_lora_checkpoint_is_a_merged_model_that_scores_as_reported(
    tiny_model: str, sst2_slice: EncodedData, tmp_path: Path
) -> None:
    session = RecordingSession(tmp_path)
    hp = Hyperparameters(strategy="lora", learning_rate=1e-2, batch_size=16, lora_dropout=0.0)
    train_model(hp, job_for(tiny_model, max_epochs=1, evals_per_epoch=1), sst2_slice, session)
    checkpoint = session.checkpoints[-1]
    weights = load_file(Path(checkpoint) / "model.safetensors")
    assert not any("lora" in name or "base_layer" in name for name in weights)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    metrics = evaluate(
        model,
        sst2_slice.validation,
        pad_token_id=sst2_slice.pad_token_id,
        precision=_cpu_precision(),
        batch_size=64,
        session=session,
    )
    assert metrics["loss"] == pytest.approx(session.reports[-1]["loss"], rel=1e-4)
    assert session.reports[-1]["trainable_params"] < trainable_parameters(model) / 10


def test_a_lora_trial_resumes_from_its_adapters(
    tiny_model: str, sst2_slice: EncodedData, tmp_path: Path
) -> None:
    """Stopped after the second report and resumed, a LoRA trial ends as if never stopped:
    its adapters come back from the training state, not from the merged weights."""
    hp = Hyperparameters(strategy="lora", learning_rate=1e-2, batch_size=16, lora_dropout=0.0)
    job = job_for(tiny_model)
    straight = RecordingSession(tmp_path / "straight")
    train_model(hp, job, sst2_slice, straight)
    resumed = RecordingSession(tmp_path / "resumed", restore_from=straight.checkpoints[1])
    train_model(hp, job, sst2_slice, resumed)
    assert [r["step"] for r in resumed.reports] == [15, 20]
    for a, b in zip(straight.reports[2:], resumed.reports, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)


def _cpu_precision():
    from hpo.trainables.loop import Precision

    return Precision(amp=None, pad_multiple=1)
