"""The numbers of a comparison, on made-up curves."""

from __future__ import annotations

import pytest

from hpo.search.analysis import ArmResult, best_so_far_at, default_target, table, verdict
from hpo.search.compute import CurvePoint, within_budget


def arm(algorithm: str, seed: int, bests: list[float]) -> ArmResult:
    curve = [CurvePoint(100 * (i + 1), 10.0 * (i + 1), f"t{i}", b, b) for i, b in enumerate(bests)]
    return ArmResult(algorithm, "asha", seed, curve, wall_s=30.0, trials=[{}] * len(bests))


def test_best_so_far_is_a_step_function_of_compute() -> None:
    curve = arm("tpe", 0, [0.5, 0.6, 0.7]).curve
    values = best_so_far_at(curve, [50, 100, 250, 1000], "samples")
    assert list(values[1:]) == [0.5, 0.6, 0.7] and values[0] != values[0]  # NaN before any
    assert within_budget(curve, 150) == curve[:2]


def test_table_ranks_reach_and_a_clear_winner() -> None:
    arms = [arm("tpe", s, [0.80, 0.90 + 0.001 * s]) for s in range(3)]
    arms += [arm("random", s, [0.70, 0.80 + 0.001 * s]) for s in range(3)]
    target = default_target(arms, "max")
    assert target == pytest.approx(0.80)
    rows = table(arms, "max", target)
    assert [r.algorithm for r in rows] == ["tpe", "random"]
    assert [r.mean_rank for r in rows] == [1.0, 2.0]
    assert rows[0].samples_to_target == 100 and rows[1].samples_to_target == 200
    assert "The lead exceeds the seed spread" in verdict(rows, "accuracy")


def test_a_lead_inside_seed_noise_is_called_noise() -> None:
    arms = [arm("tpe", s, [v]) for s, v in enumerate([0.80, 0.86, 0.83])]
    arms += [arm("random", s, [v]) for s, v in enumerate([0.82, 0.81, 0.84])]
    rows = table(arms, "max", 0.8)
    text = verdict(rows, "accuracy")
    assert "does not exceed the seed spread" in text and "Welch" in text


def test_a_lead_beyond_the_spread_but_not_significant_is_said_so() -> None:
    arms = [arm("tpe", s, [v]) for s, v in enumerate([0.80, 0.86, 0.83])]
    arms += [arm("random", s, [v]) for s, v in enumerate([0.78, 0.80, 0.79])]
    text = verdict(table(arms, "max", 0.78), "accuracy")
    assert "exceeds the spread but is not significant with 3 seeds" in text
