"""Serving costs measured in a trial: latency as the service runs the model, parameters and
weights' size; a model with its top layers dropped (`num_layers`) is smaller and serves faster."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoTokenizer

from hpo.trainables import costs
from hpo.trainables.config import Hyperparameters
from hpo.trainables.costs import serving_costs
from hpo.trainables.encoding import EncodedData
from hpo.trainables.job import ServingProbe
from hpo.trainables.loop import train_model
from tests.trainables.recording import RecordingSession, job_for


def _trained(tiny_model: str, data: EncodedData, tmp_path: Path, **hp: object):
    session = RecordingSession(tmp_path)
    job = dataclasses.replace(job_for(tiny_model, max_epochs=1), serving=ServingProbe(repeats=5))
    train_model(Hyperparameters(batch_size=16, **hp), job, data, session)
    return session


def test_each_report_carries_the_costs_measured_once(
    tiny_model: str, sst2_slice: EncodedData, tmp_path: Path
) -> None:
    reports = _trained(tiny_model, sst2_slice, tmp_path).reports
    assert len(reports) == 2
    assert all(r["latency_ms"] > 0 and r["latency_batch_ms"] > 0 for r in reports)
    assert len({(r["latency_ms"], r["params"], r["size_mb"]) for r in reports}) == 1


def test_dropping_layers_leaves_a_smaller_model_the_pipeline_loads(
    tiny_model: str, sst2_slice: EncodedData, tmp_path: Path
) -> None:
    full = _trained(tiny_model, sst2_slice, tmp_path / "full")
    shallow = _trained(tiny_model, sst2_slice, tmp_path / "shallow", num_layers=1)
    assert shallow.reports[-1]["params"] < full.reports[-1]["params"]
    assert shallow.reports[-1]["size_mb"] < full.reports[-1]["size_mb"]
    assert AutoConfig.from_pretrained(shallow.checkpoints[-1]).num_hidden_layers == 1
    from transformers import pipeline

    classify = pipeline("text-classification", model=shallow.checkpoints[-1], device="cpu")
    assert classify("a fine film")[0]["label"] in ("negative", "positive")


def test_more_layers_than_the_model_has_is_refused(
    tiny_model: str, sst2_slice: EncodedData, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="num_layers=5, but the model has only 2 layers"):
        _trained(tiny_model, sst2_slice, tmp_path, num_layers=5)


def test_the_int8_runtime_is_measured_quantized(
    sst2_slice: EncodedData, tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForSequenceClassification

    quantized: list[torch.nn.Module] = []
    quantize = costs.quantized_int8

    def spy(model: torch.nn.Module) -> torch.nn.Module:
        quantized.append(quantize(model))
        return quantized[-1]

    monkeypatch.setattr(costs, "quantized_int8", spy)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=2)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    probe = ServingProbe(repeats=5, batch_size=8)
    as_float = serving_costs(model, tokenizer, sst2_slice.validation, probe)
    int8 = dataclasses.replace(probe, runtime="int8")
    as_int8 = serving_costs(model, tokenizer, sst2_slice.validation, int8)
    assert len(quantized) == 1  # only the int8 probe ran a quantized copy
    linear = next(m for m in quantized[0].modules() if "Linear" in type(m).__name__)
    assert "quantized" in type(linear).__module__
    assert as_int8["params"] == as_float["params"]  # the checkpoint's weights, as saved
    assert as_float["latency_ms"] > 0 and as_int8["latency_ms"] > 0
    assert next(model.parameters()).dtype == torch.float32  # the trained model is untouched
