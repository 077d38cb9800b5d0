"""Every private Ray API that hpo.search.ray_compat wraps, exercised against the installed Ray:
these fail loudly when an upgrade changes one."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

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


def test_hyperband_opens_its_most_aggressive_bracket_first() -> None:
    """max_t 8, reduction 2 (s_max 3): Li et al.'s loop, s = 3 down to 0. Ray's own order (s = 0
    first: 4 trials run to 8 reports) stops nothing in a sweep whose budget covers one
    bracket."""
    scheduler = ray_compat.hyperband(time_attr="training_iteration", max_t=8, reduction_factor=2)
    scheduler.set_search_properties("accuracy", "max")
    controller = _Controller()
    for number in range(8 + 6 + 4 + 4):
        scheduler.on_trial_add(controller, _trial(str(number)))
    (band,) = scheduler._hyperbands
    shapes = [(b._n0, b._r0, b._halves) for b in band]
    assert shapes == [(8, 1, 3), (6, 2, 2), (4, 4, 1), (4, 8, 0)]


def test_a_bracket_whose_first_rung_rounds_to_zero_is_skipped() -> None:
    """max_t 3, reduction 2: Ray rounds s_max + 1 up to 3, but s = 2's first rung, 3 / 4
    reports, is 0; the first bracket opened is s = 1."""
    scheduler = ray_compat.hyperband(time_attr="training_iteration", max_t=3, reduction_factor=2)
    scheduler.set_search_properties("accuracy", "max")
    scheduler.on_trial_add(_Controller(), _trial("first"))
    (band,) = scheduler._hyperbands
    assert band[0] is None and (band[1]._r0, band[1]._halves) == (1, 1)


def test_a_finished_bracket_stops_a_trial_still_saving_its_pause() -> None:
    """max_t 2, reduction 2: the second bracket runs 2 trials to 2 reports. The first to get
    there is paused; its pause is still saving when the second's last report ends the bracket.
    Ray's own bracket stopped only trials already PAUSED, so this one was paused afterwards and
    the sweep waited for ever (seen once in CI)."""
    from ray.tune.schedulers import TrialScheduler

    scheduler = ray_compat.hyperband(time_attr="training_iteration", max_t=2, reduction_factor=2)
    scheduler.set_search_properties("accuracy", "max")
    controller = _Controller()
    trials = [_trial(str(number)) for number in range(4)]
    for trial in trials:
        scheduler.on_trial_add(controller, trial)
    first, second = trials[2:]  # the first bracket (2 trials from 1 report) holds the others

    result = {"training_iteration": 2, "accuracy": 0.5}
    assert scheduler.on_trial_result(controller, first, result) == TrialScheduler.PAUSE
    first.temporary_state.saving_to = object()  # Tune saves before it marks the trial PAUSED
    assert scheduler.on_trial_result(controller, second, result) == TrialScheduler.STOP
    assert controller.stopped == [first]


def test_a_scheduler_deciding_on_its_own_metric_keeps_it_when_tune_passes_the_sweeps() -> None:
    """ASHA on loss in a sweep of accuracy: Tune's call with the sweep's metric is accepted (a
    scheduler built with its own metric would be refused) and changes nothing; at the rung,
    the trial with the higher loss stops though its accuracy is higher."""
    import pickle

    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    asha = ray_compat.deciding_on(
        ASHAScheduler(time_attr="training_iteration", max_t=4, grace_period=1, reduction_factor=2),
        "loss",
        "min",
    )
    assert asha.set_search_properties("accuracy", "max")
    controller = _Controller()
    ahead, behind = _trial("ahead"), _trial("behind")
    for trial in (ahead, behind):
        asha.on_trial_add(controller, trial)
    first = {"training_iteration": 1, "loss": 0.60, "accuracy": 0.509}
    assert asha.on_trial_result(controller, ahead, first) == TrialScheduler.CONTINUE
    second = {"training_iteration": 1, "loss": 0.69, "accuracy": 0.510}
    assert asha.on_trial_result(controller, behind, second) == TrialScheduler.STOP
    saved = pickle.loads(pickle.dumps(asha.__dict__))  # as ASHAScheduler.save does
    assert (saved["_metric"], saved["_mode"]) == ("loss", "min")


class _TrialWithStorage:
    """What a result logger reads of a trial: its driver-side dir and its dir in storage."""

    def __init__(self, tmp_path: Path) -> None:
        import pyarrow.fs

        self.config = {"learning_rate": 1e-4}
        self.checkpoint = object()  # a checkpoint: it has been paused or restored before
        self.local_path = str(tmp_path / "driver")
        self.storage = SimpleNamespace(
            trial_fs_path=str(tmp_path / "storage"),
            storage_filesystem=pyarrow.fs.LocalFileSystem(),
        )

    def init_local_path(self) -> None:
        Path(self.local_path).mkdir(parents=True, exist_ok=True)


@pytest.mark.parametrize("file_name", ["result.json", "progress.csv"])
def test_a_resumed_trial_keeps_the_reports_storage_has_not_caught_up_with(
    file_name: str, tmp_path: Path
) -> None:
    """A paused trial is promoted before the driver's next upload: Ray's loggers copied
    storage's older file over the driver's and its last report was lost (seen once in CI:
    a trial of successive halving reported twice and trials.csv counted 1)."""
    trial = _TrialWithStorage(tmp_path)
    driver, storage = (
        Path(trial.local_path, file_name),
        Path(trial.storage.trial_fs_path, file_name),
    )
    for path, reports in ((driver, "report 1\nreport 2\n"), (storage, "report 1\n")):
        path.parent.mkdir(parents=True)
        path.write_text(reports)

    def log_a_report() -> str:
        (logger,) = [c for c in ray_compat.result_loggers() if file_name in c._SAVED_FILE_TEMPLATES]
        logger.log_trial_result(3, trial, {"training_iteration": 3})
        logger.log_trial_end(trial)
        return driver.read_text()

    assert log_a_report().startswith("report 1\nreport 2\n")
    driver.unlink()  # a restarted driver: storage's copy is all there is
    restored = log_a_report()
    assert restored.startswith("report 1\n") and "report 2" not in restored


POPULATIONS = {
    "pbt": lambda seed: ray_compat.population_based_training(
        seed=seed, hyperparam_mutations={"learning_rate": [1e-4, 2e-4]}
    ),
    "pb2": lambda seed: ray_compat.population_based_bandits(
        seed=seed,
        hyperparam_bounds={"learning_rate": (1e-4, 2e-4)},
        log_scaled=frozenset(),
        explore=dict,
    ),
}


@pytest.mark.parametrize("name", POPULATIONS)
def test_a_population_draws_its_choices_from_its_own_seeded_state(name: str, monkeypatch) -> None:
    """The one method of Ray's PBT (and PB2, its subclass) that decides and explores runs with
    the scheduler's own `random` and numpy states: the same seed makes the same draws, and the
    process-wide states are untouched."""
    import random

    import numpy as np
    from ray.tune.schedulers import PopulationBasedTraining

    def draws(self, *args, **kwargs) -> None:  # stands in for Ray's exploit-and-explore
        self.drawn.append((random.random(), np.random.uniform()))

    monkeypatch.setattr(PopulationBasedTraining, "_checkpoint_or_exploit", draws)

    def decisions(seed: int) -> list[tuple[float, float]]:
        scheduler = POPULATIONS[name](seed)
        scheduler.drawn = []
        for _ in range(3):
            scheduler._checkpoint_or_exploit(None, None, [], [])
        return scheduler.drawn

    random.seed(123)
    np.random.seed(123)
    outside, numpy_outside = random.getstate(), np.random.get_state()
    assert decisions(0) == decisions(0) != decisions(1)
    assert random.getstate() == outside
    assert np.random.get_state()[1].tolist() == numpy_outside[1].tolist()
    assert POPULATIONS[name](0)._synch


def test_pb2_models_a_log_scaled_value_by_its_logarithm() -> None:
    """Four trials at learning rates a decade apart report twice; the bandit's rows and bounds
    hold the logarithms (evenly spaced, as a log-uniform range is searched), and the config it
    explores for a copy comes back as a learning rate within the range."""
    import math

    from ray.tune.schedulers.pbt import _PBTTrialState

    explored: list[dict] = []

    def explore(config: dict) -> dict:
        explored.append(dict(config))
        return config

    bounds = (1e-5, 1e-2)
    scheduler = ray_compat.population_based_bandits(
        seed=0,
        hyperparam_bounds={"learning_rate": bounds},
        log_scaled=frozenset({"learning_rate"}),
        explore=explore,
        metric="accuracy",
        mode="max",
        time_attr="training_iteration",
        perturbation_interval=1,
    )
    rates = [1e-5, 1e-4, 1e-3, 1e-2]
    trials = [_trial(f"lr{rate}") for rate in rates]
    for trial, rate in zip(trials, rates, strict=True):
        trial.config = {"learning_rate": rate, "batch_size": 16}
        state = _PBTTrialState(trial)
        for step, gain in ((1, 0.0), (2, 0.2 if rate == 1e-3 else 0.05)):
            scheduler._save_trial_state(
                state, step, {"training_iteration": step, "accuracy": 0.5 + gain}, trial
            )
    logged = scheduler.data.groupby("Trial")["learning_rate"].first().sort_values().tolist()
    assert logged == pytest.approx([math.log(rate) for rate in rates])
    assert scheduler._hyperparam_bounds_flat["learning_rate"] == pytest.approx(
        tuple(map(math.log, bounds))
    )

    config, _ = scheduler._get_new_config(trials[0], trials[2])
    assert explored == [config] and config["batch_size"] == 16
    assert bounds[0] <= config["learning_rate"] <= bounds[1]
