"""Tune's results as plain data (`TrialSnapshot`s), read through Ray's public `ResultGrid`: the
one `Tuner.fit` returns, or one built from a run dir's last experiment snapshot on disk (while
a sweep runs, or after it stopped)."""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Any

from hpo.core import storage
from hpo.core.storage import StorageDir
from hpo.search.ray_compat import trials_of
from hpo.search.results import TrialSnapshot

if TYPE_CHECKING:
    from ray.tune import Result, ResultGrid
    from ray.tune.experiment import Trial

CHECKPOINT_PATH = "checkpoint_path"
"""The metric by which Ray Train's TuneReportCallback reports a worker group's checkpoint."""


def snapshots(results: ResultGrid) -> list[TrialSnapshot]:
    """Every trial of a `ResultGrid`, in the order Tune created them."""
    return [
        _snapshot(trial, result, results.filesystem)
        for trial, result in zip(trials_of(results), results, strict=True)
    ]


def snapshots_on_disk(run: StorageDir) -> list[TrialSnapshot]:
    """Every trial of a run dir, from Tune's last experiment snapshot; raises ValueError before
    Tune has written one."""
    from ray.tune import ExperimentAnalysis, ResultGrid

    return snapshots(ResultGrid(ExperimentAnalysis(run.location)))


def _snapshot(trial: Trial, result: Result, fs: Any) -> TrialSnapshot:
    frame = result.metrics_dataframe
    rows = [] if frame is None or frame.empty else frame.to_dict("records")
    checkpoints = {
        int(metrics["training_iteration"]): storage.as_location(
            checkpoint.filesystem, checkpoint.path
        )
        for checkpoint, metrics in result.best_checkpoints
    }
    checkpoints.update(_ray_train_checkpoints(rows, fs))
    error = None
    if trial.status == "ERROR":
        error = str(result.error) if result.error is not None else "the trial failed"
    return TrialSnapshot(
        trial_id=trial.trial_id,
        status=trial.status,
        config=dict(trial.config),
        rows=rows,
        checkpoints=checkpoints,
        error=error,
    )


def _ray_train_checkpoints(rows: list[dict[str, Any]], fs: Any) -> dict[int, str]:
    """The checkpoints of a Ray Train trial that are still kept, by report. Ray Train reports
    each one's path on the storage's filesystem; it deletes those it no longer keeps, so the
    folders that hold them are listed (once each) to tell which remain."""
    reported = {
        int(row["training_iteration"]): storage.as_location(fs, row[CHECKPOINT_PATH])
        for row in rows
        if isinstance(row.get(CHECKPOINT_PATH), str)
    }
    parents = {posixpath.dirname(location) for location in reported.values()}
    kept = set().union(*(storage.subfolders(parent) for parent in parents))
    return {iteration: path for iteration, path in reported.items() if path in kept}
