"""The Pareto front of a multi-objective sweep (`metric: [accuracy, latency_ms]`) and the point
of it that is deployed (`serve.select`).

A trial is on the front when no other trial is at least as good on every objective and better
on one. Each trial counts with its best evaluation by the validation metric (the checkpoint
that would be served) and the serving costs it measured, which do not change while it trains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hpo.search.results import TrialRecord, best_entry


def _values(record: TrialRecord, objectives: Sequence[tuple[str, str]]) -> list[float] | None:
    """The trial's value of each objective, signed so that larger is better; None when it
    lacks one or has no checkpoint to serve."""
    if record.best_checkpoint is None or record.best_metric is None:
        return None
    values = []
    for index, (name, mode) in enumerate(objectives):
        value = record.best_metric if index == 0 else record.best_metrics.get(name)
        if value is None:
            return None
        values.append(value if mode == "max" else -value)
    return values


def _dominates(a: list[float], b: list[float]) -> bool:
    return all(x >= y for x, y in zip(a, b, strict=True)) and a != b


def pareto_front(
    records: list[TrialRecord], objectives: Sequence[tuple[str, str]]
) -> list[TrialRecord]:
    """The non-dominated trials, best validation metric first."""
    scored = [(r, v) for r in records if (v := _values(r, objectives)) is not None]
    front = [r for r, v in scored if not any(_dominates(w, v) for _, w in scored)]
    return sorted(front, key=lambda r: _values(r, objectives) or [], reverse=True)


@dataclass(frozen=True)
class Selection:
    """The trial `serve.select` deploys (None when none meets its rule), and why."""

    rule: str
    record: TrialRecord | None
    reason: str


def _latency(record: TrialRecord) -> float:
    return record.best_metrics["latency_ms"]


def select(front: list[TrialRecord], mode: str, rule: dict[str, float] | None) -> Selection:
    """The point of `front` to deploy: with no rule the best by the validation metric;
    `fastest_within: d` the fastest whose metric is within d of the best; `max_latency_ms: L`
    the best whose latency is at most L. Front points suffice: a trial off the front is beaten
    by one on it at both."""
    if not front:
        return Selection("most accurate", None, "no trial has a checkpoint and every objective")
    best = front[0]  # sorted best metric first
    if not rule:
        return Selection("best metric", best, f"the best validation {best.best_metric:.4f}")
    if "fastest_within" in rule:
        within = rule["fastest_within"]
        name = f"fastest_within: {within:g}"
        close = [r for r in front if _gap(best, r, mode) <= within + 1e-12]
        chosen = min(close, key=_latency)
        return Selection(
            name,
            chosen,
            f"the fastest ({_latency(chosen):.2f} ms) of the {len(close)} trials within "
            f"{within:g} of the best metric {best.best_metric:.4f}",
        )
    limit = rule["max_latency_ms"]
    name = f"max_latency_ms: {limit:g}"
    fast = [r for r in front if _latency(r) <= limit]
    if not fast:
        fastest = min(_latency(r) for r in front)
        return Selection(
            name, None, f"no trial serves within {limit:g} ms (fastest {fastest:.2f} ms)"
        )
    return Selection(
        name,
        fast[0],
        f"the best metric ({fast[0].best_metric:.4f}) of the {len(fast)} trials within "
        f"{limit:g} ms",
    )


def _gap(best: TrialRecord, other: TrialRecord, mode: str) -> float:
    """How much worse `other`'s validation metric is than the best's."""
    difference = best.best_metric - other.best_metric
    return difference if mode == "max" else -difference


def front_summary(
    records: list[TrialRecord],
    objectives: Sequence[tuple[str, str]],
    rule: dict[str, float] | None,
) -> dict[str, Any]:
    """summary.json's account of the front and of the selection; `best` is the selected
    trial, the one deployed."""
    front = pareto_front(records, objectives)
    chosen = select(front, objectives[0][1], rule)
    return {
        "best": best_entry(chosen.record),
        "objectives": [{"metric": name, "mode": mode} for name, mode in objectives],
        "pareto_front": [
            {
                "trial_id": r.trial_id,
                **{name: r.best_metrics.get(name, r.best_metric) for name, _ in objectives},
                "config": r.config,
            }
            for r in front
        ],
        "selection": {
            "rule": chosen.rule,
            "trial_id": None if chosen.record is None else chosen.record.trial_id,
            "reason": chosen.reason,
        },
    }
