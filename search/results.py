"""Turning Tune's results into what users read: `trials.csv` (a row per trial) and
`summary.json` (the best trial, its best epoch's checkpoint, and the run's totals).

The best checkpoint is the best *evaluation* of the best trial by the sweep's metric, not its
last one: trials keep their best checkpoint besides their latest (`num_to_keep=1` with a score).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from search import storage
from search.storage import StorageDir
from trainables.metrics import METRICS

SUMMARY = "summary.json"
TRIALS = "trials.csv"
TRIALS_JSON = "trials.json"
CHECKPOINT_PATH = "checkpoint_path"  # the metric that Ray Train's TuneReportCallback adds


@dataclass
class TrialRecord:
    """One trial, as trials.csv shows it."""

    trial_id: str
    state: str  # completed | stopped_early | error | running | pending | paused
    config: dict[str, Any]
    epochs: float = 0.0
    reports: int = 0
    samples: int = 0
    best_metric: float | None = None
    best_epoch: float | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_checkpoint: str | None = None
    time_s: float = 0.0
    node: str | None = None  # the Ray node ids of its workers (comma-separated), last report
    error: str | None = None


def better(a: float, b: float, mode: str) -> bool:
    """Whether metric value `a` beats `b` in `mode` (max or min)."""
    return a > b if mode == "max" else a < b


def _has_value(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def best_row(rows: list[dict[str, Any]], metric: str, mode: str) -> dict[str, Any] | None:
    """The report with the best value of `metric` (the earliest among equals)."""
    best = None
    for row in rows:
        value = row.get(metric)
        if not _has_value(value):
            continue
        if best is None or better(value, best[metric], mode):
            best = row
    return best


def _checkpoint_for(row: dict[str, Any], checkpoints: list[tuple[str, dict[str, Any]]]) -> str | None:
    """The kept checkpoint saved at the report `row` (Tune's own, or Ray Train's path metric)."""
    path = row.get(CHECKPOINT_PATH)
    if isinstance(path, str) and storage.is_dir(path):
        return path
    for checkpoint_path, metrics in checkpoints:
        if metrics.get("training_iteration") == row.get("training_iteration"):
            return checkpoint_path
    return None


def _state(status: str, trained_fully: bool, sweep_over: bool) -> str:
    """Our trial states. Tune's last snapshot can leave a finished trial PAUSED (Hyperband
    pauses at a rung), so once the sweep is over, only the epochs trained decide."""
    if status == "ERROR":
        return "error"
    if trained_fully:
        return "completed"
    if status == "TERMINATED" or (sweep_over and status == "PAUSED"):
        return "stopped_early"
    return status.lower()


def make_record(
    trial_id: str,
    status: str,
    config: dict[str, Any],
    rows: list[dict[str, Any]],
    checkpoints: list[tuple[str, dict[str, Any]]],
    *,
    metric: str,
    mode: str,
    max_epochs: float,
    sweep_over: bool,
    error: str | None = None,
) -> TrialRecord:
    """Summarises one trial from its reports (in order) and its kept checkpoints."""
    record = TrialRecord(trial_id=trial_id, state=status, config=config, error=error)
    if rows:
        last = rows[-1]
        record.epochs = float(last.get("epoch", 0.0))
        record.reports = len(rows)
        record.samples = int(last.get("samples", 0))
        record.time_s = float(last.get("time_total_s", 0.0))
        record.node = last.get("node_id") if isinstance(last.get("node_id"), str) else None
    record.state = _state(status, record.epochs >= max_epochs - 1e-6, sweep_over)
    # Tune keeps the best checkpoint by score (ties go to the later one) and the latest, so the
    # trial's best is its best report whose checkpoint was kept (checked best first: in a
    # bucket, each check is a request).
    ranked = sorted(
        (row for row in rows if _has_value(row.get(metric))),
        key=lambda row: row[metric] if mode == "min" else -row[metric],
    )
    best = next((row for row in ranked if _checkpoint_for(row, checkpoints)), None)
    best = best or best_row(rows, metric, mode)
    if best is not None:
        record.best_metric = float(best[metric])
        record.best_epoch = float(best.get("epoch", 0.0))
        record.best_metrics = {m: float(best[m]) for m in METRICS if m in best}
        record.best_checkpoint = _checkpoint_for(best, checkpoints)
    return record


def _epoch_number(epoch: float) -> float | int:
    return int(epoch) if float(epoch).is_integer() else round(epoch, 4)


def best_trial(records: list[TrialRecord], mode: str) -> TrialRecord | None:
    """The trial whose best evaluation is best, among those with a checkpoint of it."""
    best = None
    for record in records:
        if record.best_metric is None or record.best_checkpoint is None:
            continue
        if best is None or better(record.best_metric, best.best_metric, mode):
            best = record
    return best


def write_trials_csv(records: list[TrialRecord], path: Path, metric: str) -> None:
    hyperparameters = sorted({key for record in records for key in record.config})
    columns = [
        "trial_id", "state", *(f"config.{k}" for k in hyperparameters), "epochs", "reports",
        "samples", f"best_{metric}", "best_epoch", *(f"best.{m}" for m in METRICS), "time_s",
        "checkpoint", "node", "error",
    ]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for r in records:
            writer.writerow([
                r.trial_id, r.state, *(r.config.get(k, "") for k in hyperparameters),
                round(r.epochs, 4), r.reports, r.samples,
                "" if r.best_metric is None else r.best_metric,
                "" if r.best_epoch is None else round(r.best_epoch, 4),
                *(r.best_metrics.get(m, "") for m in METRICS), round(r.time_s, 1),
                r.best_checkpoint or "", r.node or "",
                (r.error or "").splitlines()[0] if r.error else "",
            ])


def build_summary(
    records: list[TrialRecord], *, name: str, metric: str, mode: str, algorithm: str,
    scheduler: str, wall_s: float, extra: dict[str, Any],
) -> dict[str, Any]:
    """summary.json: the best trial and the run's totals."""
    best = best_trial(records, mode)
    states = [r.state for r in records]
    samples = sum(r.samples for r in records)
    return {
        "name": name,
        "best": None if best is None else {
            "metric": best.best_metric,
            "metrics": best.best_metrics,
            "config": best.config,
            "checkpoint": best.best_checkpoint,
            "trial_id": best.trial_id,
            "epoch": _epoch_number(best.best_epoch or 0.0),
        },
        "metric": metric,
        "mode": mode,
        "algorithm": algorithm,
        "scheduler": scheduler,
        "num_trials": len(records),
        "trial_states": {state: states.count(state) for state in sorted(set(states))},
        "wall_s": round(wall_s, 1),
        "train_samples": samples,
        "train_samples_per_s": round(samples / wall_s, 1) if wall_s > 0 else None,
        "trial_time_s": {
            "mean": round(sum(r.time_s for r in records) / max(len(records), 1), 1),
            "max": round(max((r.time_s for r in records), default=0.0), 1),
        },
        **extra,
    }


def write_results(run: StorageDir, records: list[TrialRecord], summary: dict[str, Any]) -> None:
    write_trials_csv(records, run.local / TRIALS, summary["metric"])
    (run.local / TRIALS_JSON).write_text(
        json.dumps([asdict(r) for r in records], indent=2, default=str) + "\n"
    )
    (run.local / SUMMARY).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    run.push(TRIALS, TRIALS_JSON, SUMMARY)  # summary.json last: it says the run is over


def read_summary(run: StorageDir) -> dict[str, Any] | None:
    run.pull(SUMMARY)
    path = run.local / SUMMARY
    return json.loads(path.read_text()) if path.is_file() else None


def _with_checkpoint_locations(rows: list[dict[str, Any]], fs) -> list[dict[str, Any]]:
    """Ray Train reports checkpoint paths on the storage's filesystem `fs`: paths in a bucket
    lose their scheme there, and get it back here."""
    return [
        {**row, CHECKPOINT_PATH: storage.as_location(fs, row[CHECKPOINT_PATH])}
        if isinstance(row.get(CHECKPOINT_PATH), str) else row
        for row in rows
    ]


def records_from_analysis(
    analysis, run: StorageDir, *, metric: str, mode: str, max_epochs: float, sweep_over: bool
) -> list[TrialRecord]:
    """Every trial of a Tune `ExperimentAnalysis` of `run`, in the order Tune created them."""
    records = []
    fs, _ = storage.filesystem(run.location)
    for trial in analysis.trials:
        frame = analysis.trial_dataframes.get(trial.trial_id)
        rows = [] if frame is None or frame.empty else frame.to_dict("records")
        rows = _with_checkpoint_locations(rows, fs)
        kept = trial.run_metadata.checkpoint_manager.best_checkpoint_results
        checkpoints = [
            (storage.as_location(result.checkpoint.filesystem, result.checkpoint.path),
             result.metrics)
            for result in kept
        ]
        error = None
        if trial.status == "ERROR":
            error = trial.get_error()
            error = str(error) if error is not None else "the trial failed"
        records.append(
            make_record(
                trial.trial_id, trial.status, dict(trial.config), rows, checkpoints,
                metric=metric, mode=mode, max_epochs=max_epochs, sweep_over=sweep_over,
                error=error,
            )
        )
    return records


def load_records(
    run: StorageDir, *, metric: str, mode: str, max_epochs: float, sweep_over: bool
) -> list[TrialRecord]:
    """Every trial of a run dir, from Tune's last experiment snapshot (also while it runs)."""
    from ray.tune import ExperimentAnalysis

    return records_from_analysis(
        ExperimentAnalysis(run.location), run, metric=metric, mode=mode, max_epochs=max_epochs,
        sweep_over=sweep_over,
    )
