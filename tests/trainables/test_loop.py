"""The training loop without Ray: reports, pipeline-ready checkpoints, and resuming that
continues the epoch count and optimizer state instead of starting over."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hpo.trainables.config import DataConfig, Hyperparameters
from hpo.trainables.data import load_splits
from hpo.trainables.encoding import EncodedData, encode
from hpo.trainables.loop import StepPlan, train_model
from tests.trainables.recording import RecordingSession, job_for

EVALUATION_S = 1.5


def test_step_plan() -> None:
    plan = StepPlan.make(100, 16, job_for("m", max_epochs=2, evals_per_epoch=2))
    assert (plan.steps_per_epoch, plan.total_steps) == (7, 14)
    assert sorted(plan.eval_steps) == [4, 7, 10, 14]
    assert plan.samples(7) == 100 and plan.samples(8) == 116 and plan.samples(14) == 200
    half = StepPlan.make(100, 16, job_for("m", max_epochs=0.5, evals_per_epoch=1))
    assert (half.total_steps, sorted(half.eval_steps)) == (4, [4])


def test_reports_and_pipeline_ready_checkpoints(
    tiny_model: str, sst2_slice: EncodedData, tmp_path: Path
) -> None:
    session = RecordingSession(tmp_path)
    hp = Hyperparameters(learning_rate=1e-3, batch_size=16, warmup_ratio=0.1)
    train_model(hp, job_for(tiny_model), sst2_slice, session)

    assert [r["epoch"] for r in session.reports] == [0.5, 1.0, 1.5, 2.0]
    assert [r["samples"] for r in session.reports] == [80, 160, 240, 320]
    assert [r["step"] for r in session.reports] == [5, 10, 15, 20]
    for report in session.reports:
        assert {
            "accuracy",
            "f1",
            "f1_macro",
            "mcc",
            "loss",
            "train_loss",
            "learning_rate",
            "train_samples_per_s",
        } <= set(report)
        assert 0 <= report["accuracy"] <= 1 and report["loss"] > 0
    assert session.reports[-1]["learning_rate"] == 0.0  # linear decay to zero

    from transformers import pipeline

    classify = pipeline("text-classification", model=session.checkpoints[-1], device="cpu")
    prediction = classify("a wonderful , moving film")[0]
    assert prediction["label"] in ("negative", "positive")
    assert 0.5 <= prediction["score"] <= 1


def test_samples_per_second_counts_training_not_evaluation(
    tiny_model: str, sst2_slice: EncodedData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An evaluation slower than a whole epoch of the tiny model's training leaves the
    training throughput as it is (as Trainer's `train_samples_per_second` does)."""
    import hpo.trainables.loop as loop

    evaluate = loop.evaluate

    def slow_evaluate(*args: object, **kwargs: object) -> dict[str, float]:
        time.sleep(EVALUATION_S)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", slow_evaluate)
    session = RecordingSession(tmp_path)
    train_model(
        Hyperparameters(learning_rate=1e-3, batch_size=16), job_for(tiny_model), sst2_slice, session
    )

    for report in session.reports:  # 80 samples between reports
        assert 80 / report["train_samples_per_s"] < EVALUATION_S, report


def test_resume_continues_epochs_and_optimizer_state(
    tiny_model: str, sst2_slice: EncodedData, tmp_path: Path
) -> None:
    """Stopping after the second report and resuming gives the same model as never stopping."""
    hp = Hyperparameters(learning_rate=1e-3, batch_size=16, dropout=0.0)
    job = job_for(tiny_model)
    straight = RecordingSession(tmp_path / "straight")
    train_model(hp, job, sst2_slice, straight)

    resumed = RecordingSession(tmp_path / "resumed", restore_from=straight.checkpoints[1])
    train_model(hp, job, sst2_slice, resumed)

    assert [r["epoch"] for r in resumed.reports] == [1.5, 2.0]  # continues, does not restart
    assert [r["step"] for r in resumed.reports] == [15, 20]
    for a, b in zip(straight.reports[2:], resumed.reports, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["learning_rate"] == pytest.approx(b["learning_rate"])
    state = torch.load(Path(resumed.checkpoints[-1]) / "training_state.pt", weights_only=False)
    steps = {int(s["step"]) for s in state["optimizer"]["state"].values()}
    assert steps == {20}  # AdamW moments carried over the resume


def test_resuming_a_finished_trial_reports_its_last_result_again(
    tiny_model: str, sst2_slice: EncodedData, tmp_path: Path
) -> None:
    """Ray Train may keep a final checkpoint whose report Tune never got (Ctrl-C in between):
    restored from it, the loop trains no further and reports that result once more."""
    hp = Hyperparameters(learning_rate=1e-3, batch_size=16)
    job = job_for(tiny_model, max_epochs=1, evals_per_epoch=1)
    finished = RecordingSession(tmp_path / "finished")
    train_model(hp, job, sst2_slice, finished)

    again = RecordingSession(tmp_path / "again", restore_from=finished.checkpoints[-1])
    train_model(hp, job, sst2_slice, again)
    assert again.reports == finished.reports
    weights = "model.safetensors"
    assert (Path(again.checkpoints[0]) / weights).read_bytes() == (
        Path(finished.checkpoints[0]) / weights
    ).read_bytes()


def test_string_labels_reach_the_checkpoint_config(
    tiny_model: str, data_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoConfig, AutoTokenizer

    splits = load_splits(
        DataConfig(
            train=f"{data_dir}/trec/train.csv",
            validation=f"{data_dir}/trec/validation.csv",
            label="coarse_label",
            max_train_samples=64,
            max_eval_samples=32,
        )
    )
    data = encode(splits, AutoTokenizer.from_pretrained(tiny_model), max_length=32)
    session = RecordingSession(tmp_path)
    train_model(Hyperparameters(batch_size=32), job_for(tiny_model, 1, 1), data, session)
    config = AutoConfig.from_pretrained(session.checkpoints[-1])
    assert config.id2label == dict(enumerate(["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]))
    assert np.isfinite(session.reports[-1]["mcc"])


def test_a_trial_restored_from_another_trials_checkpoint_takes_its_own_hyperparameters(
    tiny_model: str, sst2_slice: EncodedData, tmp_path: Path
) -> None:
    """PBT's exploit: a trial continues from another trial's checkpoint (its step, weights and
    optimizer moments) with its own, perturbed, learning rate and weight decay, and its first
    report names the trial it copied."""
    job = job_for(tiny_model)
    donor = RecordingSession(tmp_path / "donor")
    train_model(Hyperparameters(learning_rate=1e-3, batch_size=16), job, sst2_slice, donor)

    taker = RecordingSession(tmp_path / "taker", restore_from=donor.checkpoints[1])
    taker.trial_id = "taker"
    perturbed = Hyperparameters(learning_rate=2e-3, weight_decay=0.05, batch_size=16)
    train_model(perturbed, job, sst2_slice, taker)

    assert [r["step"] for r in taker.reports] == [15, 20]  # the donor's progress, continued
    assert taker.reports[0]["parent"] == "recorded" and taker.reports[0]["parent_epoch"] == 1.0
    assert "parent" not in taker.reports[1]
    # linear decay over 20 steps from the taker's own rate: 2e-3 * 5/20 after step 15
    assert taker.reports[0]["learning_rate"] == pytest.approx(5e-4)
    assert donor.reports[2]["learning_rate"] == pytest.approx(2.5e-4)
    state = torch.load(Path(taker.checkpoints[-1]) / "training_state.pt", weights_only=True)
    assert state["trial_id"] == "taker"
    assert state["optimizer"]["param_groups"][0]["weight_decay"] == 0.05
