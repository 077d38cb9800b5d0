"""Records and summaries from plain trial snapshots (no Ray), the files written from them once,
and readers that refuse a damaged summary.json with one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from hpo.core.errors import UserError
from hpo.core.storage import StorageDir
from hpo.search.results import (
    Objective,
    TrialSnapshot,
    build_summary,
    make_record,
    read_summary,
    read_trials,
    write_results,
)

OBJECTIVE = Objective(metric="accuracy", mode="max", max_epochs=1.0)


def snapshot(trial_id: str, accuracies: list[float], kept: list[int], status: str = "TERMINATED"):
    rows = [
        {
            "training_iteration": i + 1,
            "accuracy": a,
            "loss": 1 - a,
            "epoch": (i + 1) / 2,
            "samples": 64 * (i + 1),
            "time_total_s": 3.0 * (i + 1),
        }
        for i, a in enumerate(accuracies)
    ]
    checkpoints = {iteration: f"/ckpt/{trial_id}/{iteration}" for iteration in kept}
    return TrialSnapshot(trial_id, status, {"learning_rate": 0.001}, rows, checkpoints)


def test_the_best_evaluation_with_a_kept_checkpoint_wins() -> None:
    record = make_record(snapshot("a", [0.7, 0.9], kept=[1, 2]), OBJECTIVE, sweep_over=True)
    assert (record.best_metric, record.best_checkpoint) == (0.9, "/ckpt/a/2")
    assert record.state == "completed" and record.epochs == 1.0 and record.samples == 128
    lost = make_record(snapshot("b", [0.7, 0.9], kept=[1]), OBJECTIVE, sweep_over=True)
    assert (lost.best_metric, lost.best_checkpoint) == (0.7, "/ckpt/b/1")


@pytest.mark.parametrize(
    "status, accuracies, sweep_over, state",
    [
        ("TERMINATED", [0.7], True, "stopped_early"),  # half an epoch of one
        ("PAUSED", [0.7], True, "stopped_early"),  # Hyperband paused it for good
        ("PAUSED", [0.7], False, "paused"),
        ("RUNNING", [0.7], False, "running"),
        ("ERROR", [0.7, 0.8], True, "error"),
    ],
)
def test_states(status: str, accuracies: list[float], sweep_over: bool, state: str) -> None:
    trial = snapshot("t", accuracies, kept=[1], status=status)
    assert make_record(trial, OBJECTIVE, sweep_over=sweep_over).state == state


def test_results_are_written_once_from_plain_data(tmp_path: Path) -> None:
    records = [
        make_record(snapshot("a", [0.7, 0.8], kept=[2]), OBJECTIVE, sweep_over=True),
        make_record(snapshot("b", [0.9], kept=[1]), OBJECTIVE, sweep_over=True),
    ]
    summary = build_summary(
        records,
        name="s",
        objective=OBJECTIVE,
        algorithm="random",
        scheduler="fifo",
        wall_s=10.0,
        extra={"run_dir": str(tmp_path)},
    )
    assert summary["best"]["trial_id"] == "b" and summary["best"]["epoch"] == 0.5
    assert summary["trial_states"] == {"completed": 1, "stopped_early": 1}
    run = StorageDir.at(tmp_path)
    write_results(run, records, summary)
    assert read_summary(run) == json.loads(json.dumps(summary))
    assert [t["trial_id"] for t in read_trials(run)] == ["a", "b"]
    with open(tmp_path / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["best_accuracy"] for r in rows] == ["0.8", "0.9"]
    assert rows[0]["config.learning_rate"] == "0.001"
    assert not list(tmp_path.glob(".*partial*"))  # written through renames, none left over


def test_a_damaged_summary_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text('{"best": {"metric": 0.8')  # cut off mid-write
    with pytest.raises(UserError, match=r"summary.json is damaged .*hpo resume"):
        read_summary(StorageDir.at(tmp_path))
    (tmp_path / "summary.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="not a JSON object"):
        read_summary(StorageDir.at(tmp_path))
