"""The numbers of a comparison, on made-up curves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpo.core.storage import StorageDir
from hpo.search.analysis import (
    ArmResult,
    best_so_far_at,
    default_target,
    load_arms,
    table,
    verdict,
)
from hpo.search.compute import CurvePoint, append_point, within_budget


def arm(algorithm: str, seed: int, bests: list[float]) -> ArmResult:
    curve = [CurvePoint(100 * (i + 1), 10.0 * (i + 1), f"t{i}", b, b) for i, b in enumerate(bests)]
    return ArmResult(
        algorithm,
        "asha",
        seed,
        curve,
        samples_trained=curve[-1].samples,
        wall_s=30.0,
        trials=[{}] * len(bests),
    )


def test_best_so_far_is_a_step_function_of_compute() -> None:
    curve = arm("tpe", 0, [0.5, 0.6, 0.7]).curve
    values = best_so_far_at(curve, [50, 100, 250, 1000], "samples")
    assert list(values[1:]) == [0.5, 0.6, 0.7] and values[0] != values[0]  # NaN before any
    assert within_budget(curve, 150) == curve[:1]  # 200 is past the budget
    assert within_budget(curve, 200) == curve[:2]


def test_a_better_report_past_the_budget_is_overshoot_not_the_headline(tmp_path: Path) -> None:
    """Tune stops an arm after a report crosses its budget, and a trial beside it can still
    report a better value: that report is recorded as overshoot, never as the arm's best."""
    run = tmp_path / "arms" / "tpe-fifo-seed0"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"wall_s": 12.0}))
    for samples, value in [(1000, 0.70), (2000, 0.75), (3000, 0.78), (3024, 0.80), (4000, 0.82)]:
        append_point(run / "curve.csv", CurvePoint(samples, samples / 100, "t", value, value))
    plan = {
        "budget_samples": 3000,
        "arms": [
            {"algorithm": "tpe", "scheduler": "fifo", "seed": 0, "run_dir": "arms/tpe-fifo-seed0"}
        ],
    }
    [arm] = load_arms(StorageDir(str(tmp_path)), plan)
    assert arm.final_best == 0.78 and arm.samples_counted == 3000
    assert arm.samples_trained == 4000  # 1,000 samples of overshoot


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


def test_trials_that_all_score_the_same_have_no_importance_to_share() -> None:
    """fANOVA fails on zero variance (a tiny model at chance in every trial): no importance."""
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from hpo.search.analysis import importances

    study = optuna.create_study(direction="maximize")
    for rate in (1e-4, 2e-4, 3e-4):
        study.add_trial(
            create_trial(
                params={"learning_rate": rate},
                distributions={"learning_rate": FloatDistribution(1e-5, 1e-3, log=True)},
                value=0.5625,
            )
        )
    assert importances(study) == {}
