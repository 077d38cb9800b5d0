"""Training compute across a sweep, counted one way for everything that needs it: the sample
budget of `hpo compare`, and the best-so-far curves (curve.csv, TensorBoard, reports).

Compute is the number of training samples that all trials together have trained on. Every
report of a trial carries its own running count (`samples`), which continues across a pause
and resume from a checkpoint, so the ledger keeps the latest count per trial and sums them.
Pure bookkeeping: the Tune callbacks that feed it are in `hpo.search.callbacks`.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from hpo.core.storage import write_atomically
from hpo.search.results import better


class ComputeLedger:
    """Training samples per trial, and their sum."""

    def __init__(self, per_trial: dict[str, int] | None = None) -> None:
        self.per_trial: dict[str, int] = dict(per_trial or {})

    def add(self, trial_id: str, samples: int) -> int:
        """Records a trial's running count; returns the sweep's total."""
        self.per_trial[trial_id] = max(samples, self.per_trial.get(trial_id, 0))
        return self.total

    @property
    def total(self) -> int:
        return sum(self.per_trial.values())


@dataclass(frozen=True)
class CurvePoint:
    """One evaluation seen by the driver, with the sweep's compute and best value at that time."""

    samples: int  # training samples of all trials so far
    seconds: float  # wall time since the sweep started
    trial_id: str
    value: float  # this evaluation's metric
    best: float  # the best metric of the sweep so far


class CurveTracker:
    """Turns the stream of trial reports into best-so-far points.

    Its state survives `hpo resume` (through the Tune callback that owns it): wall time goes on
    from where the interrupted run stopped.
    """

    def __init__(self, metric: str, mode: str) -> None:
        self.metric, self.mode = metric, mode
        self.ledger = ComputeLedger()
        self.best: float | None = None
        self.points = 0  # the points made so far (curve.csv's rows)
        self._elapsed_before = 0.0
        self._started = time.monotonic()

    def start(self) -> None:
        self._started = time.monotonic()

    @property
    def seconds(self) -> float:
        return self._elapsed_before + time.monotonic() - self._started

    def add(self, trial_id: str, result: dict[str, Any]) -> CurvePoint | None:
        """The point for one report, or None for a report without the metric."""
        value = result.get(self.metric)
        if value is None:
            return None
        total = self.ledger.add(trial_id, int(result.get("samples", 0)))
        value = float(value)
        if self.best is None or better(value, self.best, self.mode):
            self.best = value
        self.points += 1
        return CurvePoint(total, round(self.seconds, 3), trial_id, value, self.best)

    def get_state(self) -> dict[str, Any]:
        return {
            "per_trial": self.ledger.per_trial,
            "best": self.best,
            "seconds": self.seconds,
            "points": self.points,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.ledger = ComputeLedger(state["per_trial"])
        self.best = state["best"]
        self.points = state.get("points", 0)
        self._elapsed_before = state["seconds"]
        self._started = time.monotonic()


def append_point(path: Path, point: CurvePoint) -> None:
    """Adds one row, in one write (a crash tears at most the last row, which readers skip)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=[f.name for f in fields(CurvePoint)])
    if not path.exists():
        writer.writeheader()
    writer.writerow(asdict(point))
    with open(path, "a", newline="") as handle:
        handle.write(text.getvalue())


def _point(row: dict[str, str]) -> CurvePoint | None:
    try:
        return CurvePoint(
            int(row["samples"]),
            float(row["seconds"]),
            row["trial_id"],
            float(row["value"]),
            float(row["best"]),
        )
    except (KeyError, TypeError, ValueError):  # a row torn by a crash mid-write
        return None


def read_curve(path: Path) -> list[CurvePoint]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        points = (_point(row) for row in csv.DictReader(handle))
        return [point for point in points if point is not None]


def keep_points(path: Path, count: int) -> None:
    """Cuts curve.csv back to its first `count` points: after `hpo resume`, the curve goes on
    from Tune's last snapshot, which may be older than the file."""
    points = read_curve(path)
    if len(points) <= count:
        return
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=[f.name for f in fields(CurvePoint)])
    writer.writeheader()
    writer.writerows(asdict(point) for point in points[:count])
    write_atomically(path, text.getvalue())


def within_budget(points: list[CurvePoint], budget: int | None) -> list[CurvePoint]:
    """The points made within the budget: every headline figure of a comparison comes from
    these. Tune stops an arm only after a report crosses its budget, and trials running beside
    it report a moment later: those reports are the overshoot, recorded but never counted."""
    if budget is None:
        return points
    return [point for point in points if point.samples <= budget]
