"""What users read of a sweep, built as plain data and then written once: `trials.csv` and
`trials.json` (a record per trial) and `summary.json` (the best trial, its best evaluation's
checkpoint, and the run's totals). No Ray here: `hpo.search.tune_results` turns Tune's results
into `TrialSnapshot`s, and reports read the files this module writes.

The best checkpoint is the best *evaluation* of the best trial by the sweep's metric, not its
last one: trials keep their best checkpoint besides their latest (`num_to_keep=1` with a score).
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from hpo.core.errors import UserError
from hpo.core.rundir import BEFORE_EXTEND, SUMMARY, TRIALS, TRIALS_JSON
from hpo.core.storage import StorageDir
from hpo.trainables.metrics import COSTS, METRICS


@dataclass(frozen=True)
class TrialSnapshot:
    """One trial as Tune left it, as plain data.

    Attributes:
        status: Tune's status (TERMINATED, PAUSED, ERROR, RUNNING, PENDING).
        rows: every report, in order.
        checkpoints: the kept checkpoints, by the `training_iteration` they were saved at.
    """

    trial_id: str
    status: str
    config: dict[str, Any]
    rows: list[dict[str, Any]]
    checkpoints: dict[int, str]
    error: str | None = None


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
    trainable_params: int | None = None  # what its strategy trains (train.strategy)
    samples_per_s: float | None = None  # training throughput, mean over its reports
    lineage: str = ""  # PBT: the checkpoints it took over, "TRIAL@EPOCH;..." in order
    node: str | None = None  # the Ray node ids of its workers (comma-separated), last report
    error: str | None = None


@dataclass(frozen=True)
class Objective:
    """The sweep's metric and direction, and the epochs of a full trial."""

    metric: str
    mode: str
    max_epochs: float


def better(a: float, b: float, mode: str) -> bool:
    """Whether metric value `a` beats `b` in `mode` (max or min)."""
    return a > b if mode == "max" else a < b


def has_value(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


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


def _best_kept_row(
    rows: list[dict[str, Any]], checkpoints: dict[int, str], objective: Objective
) -> dict[str, Any] | None:
    """The best report whose checkpoint was kept (the earliest among equals); else the best
    report. Tune keeps the best checkpoint by score and the latest, so this is the trial's best
    evaluation unless its checkpoint was lost."""
    ranked = sorted(
        (row for row in rows if has_value(row.get(objective.metric))),
        key=lambda row: (
            row[objective.metric] if objective.mode == "min" else -row[objective.metric]
        ),
    )
    kept = (row for row in ranked if row.get("training_iteration") in checkpoints)
    return next(kept, ranked[0] if ranked else None)


def make_record(snapshot: TrialSnapshot, objective: Objective, *, sweep_over: bool) -> TrialRecord:
    """Summarises one trial from its reports and its kept checkpoints."""
    record = TrialRecord(
        trial_id=snapshot.trial_id,
        state=snapshot.status,
        config=snapshot.config,
        error=snapshot.error,
    )
    if snapshot.rows:
        last = snapshot.rows[-1]
        record.epochs = float(last.get("epoch", 0.0))
        record.reports = len(snapshot.rows)
        record.samples = int(last.get("samples", 0))
        record.time_s = float(last.get("time_total_s", 0.0))
        record.node = last.get("node_id") if isinstance(last.get("node_id"), str) else None
        if "trainable_params" in last:
            record.trainable_params = int(last["trainable_params"])
        speeds = [
            row["train_samples_per_s"] for row in snapshot.rows if "train_samples_per_s" in row
        ]
        record.samples_per_s = round(statistics.mean(speeds), 2) if speeds else None
        record.lineage = ";".join(  # rows from a data frame: NaN where a report had no parent
            f"{row['parent']}@{row['parent_epoch']:.3g}"
            for row in snapshot.rows
            if isinstance(row.get("parent"), str)
        )
    trained_fully = record.epochs >= objective.max_epochs - 1e-6
    record.state = _state(snapshot.status, trained_fully, sweep_over)
    best = _best_kept_row(snapshot.rows, snapshot.checkpoints, objective)
    if best is not None:
        record.best_metric = float(best[objective.metric])
        record.best_epoch = float(best.get("epoch", 0.0))
        record.best_metrics = {m: float(best[m]) for m in METRICS + COSTS if has_value(best.get(m))}
        record.best_checkpoint = snapshot.checkpoints.get(best.get("training_iteration"))
    return record


def samples_trained(trials: list[TrialSnapshot]) -> int:
    """Training samples of all trials together: each trial's running count, last report."""
    return sum(int(t.rows[-1].get("samples", 0)) for t in trials if t.rows)


def best_trial(records: list[TrialRecord], mode: str) -> TrialRecord | None:
    """The trial whose best evaluation is best, among those with a checkpoint of it."""
    best = None
    for record in records:
        if record.best_metric is None or record.best_checkpoint is None:
            continue
        if best is None or better(record.best_metric, best.best_metric, mode):
            best = record
    return best


def _epoch_number(epoch: float) -> float | int:
    return int(epoch) if float(epoch).is_integer() else round(epoch, 4)


def best_entry(record: TrialRecord | None) -> dict[str, Any] | None:
    """summary.json's `best`: the trial deployed, at its best evaluation."""
    if record is None:
        return None
    return {
        "metric": record.best_metric,
        "metrics": record.best_metrics,
        "config": record.config,
        "checkpoint": record.best_checkpoint,
        "trial_id": record.trial_id,
        "epoch": _epoch_number(record.best_epoch or 0.0),
    }


def build_summary(
    records: list[TrialRecord],
    *,
    name: str,
    objective: Objective,
    algorithm: str,
    scheduler: str,
    wall_s: float,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """summary.json: the best trial and the run's totals."""
    states = [r.state for r in records]
    samples = sum(r.samples for r in records)
    return {
        "name": name,
        "best": best_entry(best_trial(records, objective.mode)),
        "metric": objective.metric,
        "mode": objective.mode,
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


def trials_csv(records: list[TrialRecord], metric: str) -> str:
    """trials.csv: a row per trial, its hyperparameters as `config.<name>` columns."""
    hyperparameters = sorted({key for record in records for key in record.config})
    measured = METRICS + tuple(c for c in COSTS if any(c in r.best_metrics for r in records))
    columns = [
        "trial_id",
        "state",
        *(f"config.{k}" for k in hyperparameters),
        "epochs",
        "reports",
        "samples",
        f"best_{metric}",
        "best_epoch",
        *(f"best.{m}" for m in measured),
        "time_s",
        "trainable_params",
        "samples_per_s",
        "lineage",
        "checkpoint",
        "node",
        "error",
    ]
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(columns)
    for r in records:
        writer.writerow(
            [
                r.trial_id,
                r.state,
                *(r.config.get(k, "") for k in hyperparameters),
                round(r.epochs, 4),
                r.reports,
                r.samples,
                "" if r.best_metric is None else r.best_metric,
                "" if r.best_epoch is None else round(r.best_epoch, 4),
                *(r.best_metrics.get(m, "") for m in measured),
                round(r.time_s, 1),
                "" if r.trainable_params is None else r.trainable_params,
                "" if r.samples_per_s is None else r.samples_per_s,
                r.lineage,
                r.best_checkpoint or "",
                r.node or "",
                (r.error or "").splitlines()[0] if r.error else "",
            ]
        )
    return text.getvalue()


def _write_trial_files(run: StorageDir, records: list[TrialRecord], metric: str) -> None:
    run.write_text(TRIALS, trials_csv(records, metric))
    run.write_text(TRIALS_JSON, json.dumps([asdict(r) for r in records], indent=2) + "\n")


def write_trials(run: StorageDir, records: list[TrialRecord], metric: str) -> None:
    """trials.csv and trials.json alone: the state of a sweep that has not ended."""
    _write_trial_files(run, records, metric)
    run.push(TRIALS, TRIALS_JSON)


def write_results(run: StorageDir, records: list[TrialRecord], summary: dict[str, Any]) -> None:
    """Every result file of a finished sweep, written once and pushed once (summary.json last:
    its presence says the run is over)."""
    _write_trial_files(run, records, summary["metric"])
    run.write_text(SUMMARY, json.dumps(summary, indent=2, default=str) + "\n")
    run.push(TRIALS, TRIALS_JSON, SUMMARY)


@dataclass(frozen=True)
class BeforeExtend:
    """The sweep that `hpo extend` continues: its trials and totals (none for a plain run)."""

    records: list[TrialRecord] = field(default_factory=list)
    wall_s: float = 0.0
    extensions: list[dict[str, Any]] = field(default_factory=list)

    def facts(self, added: int) -> dict[str, Any]:
        """summary.json's account of every extension, this one's trials included."""
        if not self.records:
            return {}
        last = {**self.extensions[-1], "trials_added": added}
        return {"extensions": [*self.extensions[:-1], last]}


def read_before_extend(run: StorageDir) -> BeforeExtend:
    """What `hpo extend` left of the sweep it continues (empty for a run never extended)."""
    run.pull(BEFORE_EXTEND)
    path = run.local / BEFORE_EXTEND
    if not path.is_file():
        return BeforeExtend()
    saved = json.loads(path.read_text())
    return BeforeExtend(
        records=[TrialRecord(**t) for t in saved["trials"]],
        wall_s=saved["wall_s"],
        extensions=saved["extensions"],
    )


def _read_json(run: StorageDir, name: str) -> Any | None:
    run.pull(name)
    path = run.local / name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(
            f"{run}/{name} is damaged ({err}); rerun `hpo resume {run}` to write it again"
        ) from None


def read_summary(run: StorageDir) -> dict[str, Any] | None:
    """summary.json of a run dir, or None while the sweep has not ended."""
    summary = _read_json(run, SUMMARY)
    if summary is not None and not isinstance(summary, dict):
        raise UserError(f"{run}/{SUMMARY} is damaged (not a JSON object)")
    return summary


def read_trials(run: StorageDir) -> list[dict[str, Any]]:
    """trials.json of a run dir: every trial's record as a dict (empty before the first)."""
    trials = _read_json(run, TRIALS_JSON)
    return trials if isinstance(trials, list) else []
