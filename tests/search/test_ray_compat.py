"""Every private Ray API that hpo.search.ray_compat wraps, exercised against the installed Ray:
these fail loudly when an upgrade changes one."""

from __future__ import annotations

from pathlib import Path

from hpo.search import ray_compat


def test_trials_of_gives_the_trials_behind_a_result_grid(finished_run: Path) -> None:
    from ray.tune import ExperimentAnalysis, ResultGrid

    results = ResultGrid(ExperimentAnalysis(str(finished_run)))
    trials = ray_compat.trials_of(results)
    assert len(trials) == len(results) == 2
    for trial, result in zip(trials, results, strict=True):
        assert trial.status == "TERMINATED"
        assert trial.config == result.config
        assert result.metrics["trial_id"] == trial.trial_id


def test_successive_halving_is_one_hand_shaped_hyperband_bracket() -> None:
    from ray.tune.schedulers import HyperBandScheduler
    from ray.tune.schedulers.hyperband import _Bracket

    scheduler = ray_compat.successive_halving(
        time_attr="training_iteration",
        max_t=4,
        grace_period=1,
        reduction_factor=2,
        num_trials=8,
        halvings=2,
    )
    assert isinstance(scheduler, HyperBandScheduler)
    for s in (0, 3):  # whatever bracket Hyperband asks for, the same shape
        bracket = scheduler._create_bracket(s)
        assert isinstance(bracket, _Bracket)
        assert (bracket._n0, bracket._r0, bracket._halves, bracket._max_t_attr) == (8, 1, 2, 4)
