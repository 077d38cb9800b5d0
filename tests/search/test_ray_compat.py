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


class _Controller:
    """The one method a Hyperband bracket calls on Tune's controller."""

    def __init__(self) -> None:
        self.stopped: list = []

    def stop_trial(self, trial) -> None:
        self.stopped.append(trial)


def _trial(name: str):
    from ray.tune.experiment import Trial

    trial = Trial("__fake", stub=True, experiment_tag=name)
    trial.set_status(Trial.RUNNING)
    return trial


def test_a_finished_bracket_stops_a_trial_still_saving_its_pause() -> None:
    """max_t 2, reduction 2: bracket one runs 2 trials to 2 reports. The first to get there is
    paused; its pause is still saving when the second's last report ends the bracket. Ray's
    own bracket stopped only trials already PAUSED, so this one was paused afterwards and the
    sweep waited for ever (seen once in CI)."""
    from ray.tune.schedulers import TrialScheduler

    scheduler = ray_compat.hyperband(time_attr="training_iteration", max_t=2, reduction_factor=2)
    scheduler.set_search_properties("accuracy", "max")
    controller = _Controller()
    first, second = _trial("first"), _trial("second")
    for trial in (first, second):
        scheduler.on_trial_add(controller, trial)

    result = {"training_iteration": 2, "accuracy": 0.5}
    assert scheduler.on_trial_result(controller, first, result) == TrialScheduler.PAUSE
    first.temporary_state.saving_to = object()  # Tune saves before it marks the trial PAUSED
    assert scheduler.on_trial_result(controller, second, result) == TrialScheduler.STOP
    assert controller.stopped == [first]


def test_pbt_draws_its_choices_from_its_own_seeded_state(monkeypatch) -> None:
    """The one method of Ray's PBT that decides (and explores) runs with the scheduler's own
    random state: the same seed makes the same draws, and the process-wide state is untouched."""
    import random

    from ray.tune.schedulers import PopulationBasedTraining

    def draws(self, *args, **kwargs) -> None:  # stands in for Ray's exploit-and-explore
        self.drawn.append(random.random())

    monkeypatch.setattr(PopulationBasedTraining, "_checkpoint_or_exploit", draws)

    def decisions(seed: int) -> list[float]:
        scheduler = ray_compat.population_based_training(
            seed=seed, hyperparam_mutations={"learning_rate": [1e-4, 2e-4]}
        )
        scheduler.drawn = []
        for _ in range(3):
            scheduler._checkpoint_or_exploit(None, None, [], [])
        return scheduler.drawn

    random.seed(123)
    outside = random.getstate()
    assert decisions(0) == decisions(0) != decisions(1)
    assert random.getstate() == outside
    assert ray_compat.population_based_training(
        seed=0, hyperparam_mutations={"learning_rate": [1e-4]}
    )._synch
