"""Integration: real sweeps of a tiny BERT on slices of the shared data, through Ray Tune."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from hpo.core.rundir import TRIALS
from hpo.search.runner import run_sweep
from hpo.search.sweepfile import parse_sweep
from tests.helpers import result_rows, tiny_sweep

pytestmark = pytest.mark.usefixtures("ray_session", "data_dir")


def sweep_of(tiny_model: str, tmp_path: Path, **sections: Any):
    return parse_sweep(tiny_sweep(tiny_model, tmp_path / "runs", **sections))


def trial_rows(summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every report of every trial, from Tune's result.json files."""
    return result_rows(Path(summary["run_dir"]))


def trials_table(summary: dict[str, Any]) -> pd.DataFrame:
    return pd.read_csv(Path(summary["run_dir"]) / TRIALS)


@pytest.mark.parametrize("algorithm", ["grid", "random", "tpe", "hyperopt", "gp"])
def test_every_algorithm_finishes_a_sweep(algorithm: str, tiny_model: str, tmp_path: Path) -> None:
    space = {"learning_rate": {"loguniform": [1e-4, 3e-3]}, "batch_size": {"choice": [16, 32]}}
    if algorithm == "grid":
        space = {"learning_rate": {"grid": [1e-4, 1e-3]}, "batch_size": {"choice": [16, 32]}}
    sweep = sweep_of(
        tiny_model,
        tmp_path,
        space=space,
        search={
            "algorithm": algorithm,
            "num_samples": 1 if algorithm == "grid" else 3,
            "max_concurrent": 2,
            "n_startup_trials": 2,
        },
    )
    summary = run_sweep(sweep)

    table = trials_table(summary)
    assert len(table) == (4 if algorithm == "grid" else 3)
    assert set(table.state) == {"completed"}
    assert (table.reports == 2).all()
    if algorithm == "grid":
        assert sorted(
            zip(table["config.learning_rate"], table["config.batch_size"], strict=True)
        ) == [
            (1e-4, 16),
            (1e-4, 32),
            (1e-3, 16),
            (1e-3, 32),
        ]
    best = summary["best"]
    assert best["metric"] == table["best_loss"].min()
    assert Path(best["checkpoint"], "model.safetensors").is_file()
    assert summary["algorithm"] == algorithm and summary["num_trials"] == len(table)


def run_scheduled(
    tiny_model: str, tmp_path: Path, scheduler: dict, *, trials: int, concurrent: int, **space: Any
) -> dict[str, Any]:
    """Runs `trials` random trials (of `space`, default a learning-rate range) under a
    scheduler; returns the summary."""
    return run_sweep(
        sweep_of(
            tiny_model,
            tmp_path,
            scheduler=scheduler,
            search={"algorithm": "random", "num_samples": trials, "max_concurrent": concurrent},
            space=space or {"learning_rate": {"loguniform": [1e-6, 5e-3]}},
        )
    )


def test_fifo_runs_every_trial_to_the_end(tiny_model: str, tmp_path: Path) -> None:
    fifo = {"name": "fifo", "max_epochs": 1.5}
    summary = run_scheduled(tiny_model, tmp_path, fifo, trials=2, concurrent=2)
    table = trials_table(summary)
    assert set(table.state) == {"completed"} and (table.reports == 3).all()
    assert (table.epochs == 1.5).all()


def test_asha_stops_trials_at_rungs(tiny_model: str, tmp_path: Path) -> None:
    asha = {"name": "asha", "max_epochs": 2, "grace_period": 0.5, "reduction_factor": 2}
    summary = run_scheduled(tiny_model, tmp_path, asha, trials=6, concurrent=2)
    table = trials_table(summary)
    stopped = table[table.state == "stopped_early"]
    assert len(stopped) >= 1 and (table.state == "completed").sum() >= 1
    assert set(stopped.reports) <= {1, 2}  # ASHA's rungs: 1 and 2 reports (0.5 and 1 epoch)


def test_successive_halving_pauses_promotes_and_resumes(tiny_model: str, tmp_path: Path) -> None:
    """Synchronous halving of 4 trials: rungs at 1, 2, 4 reports keep 2, then 1. Trials that
    reach a rung first are paused and, when promoted, resume from their checkpoint."""
    halving = {"name": "successive_halving", "max_epochs": 2, "grace_period": 0.5}
    summary = run_scheduled(
        tiny_model, tmp_path, {**halving, "reduction_factor": 2}, trials=4, concurrent=4
    )
    table = trials_table(summary)
    assert sorted(table.reports) == [1, 1, 2, 4]
    assert sorted(table.state) == ["completed", "stopped_early", "stopped_early", "stopped_early"]

    losses_at_rung_1 = {trial: reports[0]["loss"] for trial, reports in trial_rows(summary).items()}
    promoted = table[table.reports > 1].trial_id
    assert max(losses_at_rung_1[t] for t in promoted) <= min(
        losses_at_rung_1[t] for t in table[table.reports == 1].trial_id
    )

    resumed = [
        (reports[0]["step"], previous, row)
        for reports in trial_rows(summary).values()
        for previous, row in zip(reports, reports[1:], strict=False)
        if row["iterations_since_restore"] < row["training_iteration"]
    ]
    assert resumed, "no promoted trial was paused and resumed"
    for steps_per_report, previous, row in resumed:
        assert row["epoch"] > previous["epoch"]  # continues its epochs instead of restarting
        assert row["step"] == previous["step"] + steps_per_report


def test_hyperband_halves_its_second_bracket(tiny_model: str, tmp_path: Path) -> None:
    """max_t = 2 reports, reduction 2: bracket one runs 2 trials fully, bracket two starts 2
    trials at 1 report and keeps 1."""
    hyperband = {"name": "hyperband", "max_epochs": 1, "reduction_factor": 2}
    summary = run_scheduled(tiny_model, tmp_path, hyperband, trials=4, concurrent=4)
    table = trials_table(summary)
    assert sorted(table.reports) == [1, 2, 2, 2]


def test_median_rule_stops_trials_worse_than_the_median(tiny_model: str, tmp_path: Path) -> None:
    """Two sane learning rates, then four that blow the loss up: once two trials have results,
    the rule stops diverging ones long before their last evaluation. (Which evaluation depends
    on the median of the other trials at that moment, diverging ones included, so a trial whose
    loss dips below that median may survive one more report.)"""
    median = {"name": "median", "max_epochs": 2, "grace_period": 0.5, "min_samples_required": 2}
    rates = {"grid": [1e-4, 2e-4, 0.3, 0.4, 0.5, 0.6]}
    summary = run_scheduled(
        tiny_model, tmp_path, median, trials=1, concurrent=2, learning_rate=rates
    )
    table = trials_table(summary)
    stopped = table[table.state == "stopped_early"]
    assert len(stopped) >= 2
    assert (stopped["config.learning_rate"] >= 0.3).all()
    assert (stopped.reports <= 2).all()
    assert (table[table["config.learning_rate"] < 1e-3].reports == 4).all()
    assert (table[table["config.learning_rate"] < 1e-3].state == "completed").all()


def test_two_worker_ddp_trial(tiny_model: str, tmp_path: Path) -> None:
    """train.workers: 2 runs a Ray Train TorchTrainer with DDP over gloo; the checkpoint path
    reaches Tune as a metric and becomes the best checkpoint."""
    sweep = sweep_of(
        tiny_model,
        tmp_path,
        search={"algorithm": "random", "num_samples": 1},
        train={"workers": 2, "cpus_per_worker": 1, "evals_per_epoch": 2},
    )
    summary = run_sweep(sweep)
    assert summary["launcher"] == "ray_train" and summary["workers_per_trial"] == 2
    rows = next(iter(trial_rows(summary).values()))
    assert [r["epoch"] for r in rows] == [0.5, 1.0]
    assert [r["samples"] for r in rows] == [128, 256]  # the global batch is split by the ranks
    assert all(Path(r["checkpoint_path"]).is_dir() for r in rows[-1:])
    assert Path(summary["best"]["checkpoint"], "config.json").is_file()


def test_sentence_pairs_report_f1(tiny_model: str, tmp_path: Path) -> None:
    sweep = sweep_of(
        tiny_model,
        tmp_path,
        metric="f1",
        data={
            "train": "${HPO_DATA}/mrpc/train.csv",
            "validation": "${HPO_DATA}/mrpc/validation.csv",
            "text": "sentence1",
            "text_pair": "sentence2",
            "max_train_samples": 128,
            "max_eval_samples": 64,
            "label_names": ["not_equivalent", "equivalent"],
        },
    )
    summary = run_sweep(sweep)
    assert summary["mode"] == "max"
    assert set(summary["best"]["metrics"]) == {"accuracy", "f1", "f1_macro", "mcc", "loss"}
    assert summary["labels"] == ["not_equivalent", "equivalent"]


def test_string_labels_and_the_best_checkpoint_in_a_pipeline(
    tiny_model: str, tmp_path: Path
) -> None:
    sweep = sweep_of(
        tiny_model,
        tmp_path,
        metric="accuracy",
        data={
            "train": "${HPO_DATA}/trec/train.csv",
            "validation": "${HPO_DATA}/trec/validation.csv",
            "text": "text",
            "label": "coarse_label",
            "max_train_samples": 256,
            "max_eval_samples": 64,
        },
    )
    summary = run_sweep(sweep)
    assert summary["labels"] == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]

    from transformers import pipeline

    classify = pipeline("text-classification", model=summary["best"]["checkpoint"], device="cpu")
    answers = classify(["What city is the Eiffel Tower in ?", "Who wrote Hamlet ?"])
    assert {a["label"] for a in answers} <= set(summary["labels"])
    best = summary["best"]
    rows = trial_rows(summary)[best["trial_id"]]
    assert best["metric"] == max(r["accuracy"] for r in rows)  # the best epoch, not the last
