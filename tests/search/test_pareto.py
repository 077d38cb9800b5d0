"""The Pareto front of accuracy against serving costs, and the point `serve.select` deploys."""

from __future__ import annotations

import pytest

from hpo.search.pareto import front_summary, pareto_front, select
from hpo.search.results import TrialRecord

OBJECTIVES = [("accuracy", "max"), ("latency_ms", "min")]


def trial(trial_id: str, accuracy: float, latency: float, checkpoint: bool = True) -> TrialRecord:
    return TrialRecord(
        trial_id=trial_id,
        state="completed",
        config={},
        best_metric=accuracy,
        best_metrics={"accuracy": accuracy, "latency_ms": latency},
        best_checkpoint=f"/ckpt/{trial_id}" if checkpoint else None,
    )


TRIALS = [
    trial("deep", 0.90, 20.0),
    trial("mid", 0.89, 12.0),
    trial("shallow", 0.85, 5.0),
    trial("dominated", 0.86, 13.0),  # mid is more accurate and faster
    trial("slow_twin", 0.90, 25.0),  # as accurate as deep, slower
    trial("lost", 0.99, 1.0, checkpoint=False),  # nothing to serve: not a point
]


def test_the_front_keeps_the_trials_no_other_beats_at_both() -> None:
    front = pareto_front(TRIALS, OBJECTIVES)
    assert [r.trial_id for r in front] == ["deep", "mid", "shallow"]  # most accurate first


@pytest.mark.parametrize(
    ("rule", "chosen"),
    [
        (None, "deep"),
        ({"fastest_within": 0.01}, "mid"),  # 0.89 is one point below 0.90
        ({"fastest_within": 0.005}, "deep"),
        ({"fastest_within": 0.05}, "shallow"),
        ({"max_latency_ms": 15}, "mid"),  # the most accurate within 15 ms
        ({"max_latency_ms": 5}, "shallow"),
    ],
)
def test_select_picks_by_its_rule(rule: dict | None, chosen: str) -> None:
    picked = select(pareto_front(TRIALS, OBJECTIVES), "max", rule)
    assert picked.record is not None and picked.record.trial_id == chosen


def test_a_latency_limit_no_trial_meets_selects_nothing_and_says_why() -> None:
    facts = front_summary(TRIALS, OBJECTIVES, {"max_latency_ms": 2})
    assert facts["best"] is None and facts["selection"]["trial_id"] is None
    assert "no trial serves within 2 ms (fastest 5.00 ms)" in facts["selection"]["reason"]


def test_the_summary_lists_the_front_and_deploys_the_selected_point() -> None:
    facts = front_summary(TRIALS, OBJECTIVES, {"fastest_within": 0.01})
    assert facts["best"]["trial_id"] == "mid" and facts["best"]["checkpoint"] == "/ckpt/mid"
    assert [p["trial_id"] for p in facts["pareto_front"]] == ["deep", "mid", "shallow"]
    assert facts["pareto_front"][1] == {
        "trial_id": "mid",
        "accuracy": 0.89,
        "latency_ms": 12.0,
        "config": {},
    }
    assert facts["selection"]["rule"] == "fastest_within: 0.01"


def test_a_minimised_metric_is_within_a_margin_above_the_best() -> None:
    losses = [trial("a", 0.30, 20.0), trial("b", 0.32, 10.0), trial("c", 0.40, 2.0)]
    front = pareto_front(losses, [("loss", "min"), ("latency_ms", "min")])
    assert [r.trial_id for r in front] == ["a", "b", "c"]
    picked = select(front, "min", {"fastest_within": 0.02})
    assert picked.record is not None and picked.record.trial_id == "b"
