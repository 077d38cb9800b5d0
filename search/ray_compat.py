"""Every use of Ray Tune's private API, in one place. Each has a test in
tests/search/test_ray_compat.py that fails loudly when a Ray upgrade changes it.

- A trial's final status (PAUSED, TERMINATED, ERROR...) is not part of the public `Result`;
  the `ExperimentAnalysis` behind a `ResultGrid` (`_experiment_analysis`) holds the trials.
- Ray has no synchronous successive halving; Hyperband is a set of such brackets, so one
  bracket of `HyperBandScheduler` shaped by hand (`hyperband._Bracket`) is one.
- Ray's Hyperband opens its brackets from s = 0 (no early stopping) up; ours from s_max down,
  by renumbering the bracket Ray asks for (`_get_n0`, `_get_r0`, `_s_max_1`, `_create_bracket`).
- Ray's bracket, once finished, stops the trials it paused but misses one whose pause is still
  saving its checkpoint: that trial ends up PAUSED for ever and the sweep never ends. Both our
  schedulers use a bracket that stops it too (`_Bracket.cleanup_full`).
- Ray's result loggers (`JsonLoggerCallback`, `CSVLoggerCallback`), when a trial with a
  checkpoint starts again, copy its result file from storage over the driver's local copy
  (`LoggerCallback._restore_from_remote`). The local copy is uploaded every few seconds, so a
  trial paused and promoted in between lost the reports it made since the last upload; ours
  copy from storage only when there is no local file (a driver that restarted).
- Ray's PBT draws its choices (whom to copy, how to perturb) from the process-wide `random`,
  and PB2 its acquisition's starting points from numpy's; ours draw them from their own seeded
  states, swapped in around the one method that decides
  (`PopulationBasedTraining._checkpoint_or_exploit`).
- Ray's HyperOptSearch cannot be told of trials it did not run (no `add_evaluated_point`;
  `points_to_evaluate` are run again), so ours writes past trials into its hyperopt `Trials`
  as finished ones (`_hpopt_trials`, `_setup_hyperopt`, `_convert_categories_to_indices`).
- Ray's PB2 fits its Gaussian process to the values as they are, so a learning rate between
  1e-5 and 1e-3 would be explored as if 5e-4 were the middle; ours hands it the logarithm of
  each log-scaled value: in the rows it records (`PB2.data`), its bounds
  (`_hyperparam_bounds_flat`) and the config it explores (`PB2._get_new_config`).
- Tune hands the sweep's metric (`TuneConfig.metric`) to the scheduler as well as the searcher,
  and refuses a scheduler built with a metric of its own; ours keeps its own and accepts (its
  public `set_search_properties`, replaced on the instance).

Ray is imported inside the functions: the sweep file's validation imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ray.tune import Callback, ResultGrid
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler
    from ray.tune.search import Searcher


def trials_of(results: ResultGrid) -> list[Trial]:
    """The trials behind `results`, in the same order: their id, config and final status."""
    return list(results._experiment_analysis.trials)


def result_loggers() -> list[Callback]:
    """Tune's JSON and CSV result loggers (`result.json`, `progress.csv`, which `ResultGrid`
    reads), keeping the driver's own file of a trial that resumes in the same run."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    class KeepsTheLocalFile:
        def _restore_from_remote(self, file_name: str, trial: Trial) -> None:
            if not Path(trial.local_path, file_name).exists():
                super()._restore_from_remote(file_name, trial)  # type: ignore[misc]

    class JsonLogger(KeepsTheLocalFile, JsonLoggerCallback):
        pass

    class CsvLogger(KeepsTheLocalFile, CSVLoggerCallback):
        pass

    return [JsonLogger(), CsvLogger()]


class _KeepsItsMetric:
    """A scheduler's `set_search_properties` that accepts Tune's metric and mode and keeps its
    own (a class, not a lambda: Ray's ASHA pickles its `__dict__` when Tune saves it)."""

    def __call__(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True


def deciding_on(scheduler: TrialScheduler, metric: str, mode: str) -> TrialScheduler:
    """`scheduler`, comparing trials on `metric` whatever metric the sweep optimises (which
    Tune passes to the searcher and, unasked, to the scheduler too)."""
    scheduler.set_search_properties(metric, mode)
    scheduler.set_search_properties = _KeepsItsMetric()  # type: ignore[method-assign]
    return scheduler


def _bracket_class() -> type:
    """Ray's Hyperband bracket, with its end fixed: Ray 2.60's `cleanup_full` stops only trials
    already PAUSED, so a trial whose pause is still saving when the bracket's last result comes
    in is paused afterwards and waits for ever (`_process_bracket` checks `is_saving`; this
    does not)."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers.hyperband import _Bracket

    class Bracket(_Bracket):
        def cleanup_full(self, tune_controller: Any) -> None:
            for trial in self.current_trials():
                if trial.status == Trial.PAUSED or trial.is_saving:
                    tune_controller.stop_trial(trial)

    return Bracket


def hyperband(*, time_attr: str, max_t: int, reduction_factor: float) -> TrialScheduler:
    """Ray's HyperBandScheduler with brackets that stop every trial they paused, opened in Li et
    al.'s order: from s_max (the most trials, first halved at max_t / eta^s_max) down to s = 0
    (s_max + 1 trials run to max_t, nothing stopped). Ray opens s = 0 first, so a sweep whose
    budget covers one bracket stopped nothing early."""
    from ray.tune.schedulers import HyperBandScheduler

    bracket = _bracket_class()

    class Hyperband(HyperBandScheduler):
        def __init__(self) -> None:
            super().__init__(time_attr=time_attr, max_t=max_t, reduction_factor=reduction_factor)
            # Ray asks for bracket s = len(band); its sizes and first rungs come from
            # `_get_n0(s)` and `_get_r0(s)` (a bracket whose first rung rounds to 0 is skipped)
            n0, r0 = self._get_n0, self._get_r0
            self._get_n0 = lambda s: n0(self._reversed(s))
            self._get_r0 = lambda s: r0(self._reversed(s))

        def _reversed(self, s: int) -> int:
            return self._s_max_1 - 1 - s

        def _create_bracket(self, s: int) -> Any:
            return bracket(
                time_attr=self._time_attr,
                max_trials=self._get_n0(s),
                init_t_attr=self._get_r0(s),
                max_t_attr=self._max_t_attr,
                eta=self._eta,
                s=self._reversed(s),
                stop_last_trials=self._stop_last_trials,
            )

    return Hyperband()


def successive_halving(
    *,
    time_attr: str,
    max_t: int,
    grace_period: int,
    reduction_factor: float,
    num_trials: int,
    halvings: int,
) -> TrialScheduler:
    """Ray's HyperBandScheduler restricted to one bracket that holds every trial: Ray's
    bracket logic (pausing, promotion) with only its shape fixed."""
    from ray.tune.schedulers import HyperBandScheduler

    bracket = _bracket_class()

    class SynchronousSuccessiveHalving(HyperBandScheduler):
        def _create_bracket(self, s: int) -> Any:
            return bracket(
                time_attr=self._time_attr,
                max_trials=num_trials,
                init_t_attr=grace_period,
                max_t_attr=max_t,
                eta=reduction_factor,
                s=halvings,
                stop_last_trials=self._stop_last_trials,
            )

    return SynchronousSuccessiveHalving(
        time_attr=time_attr, max_t=max_t, reduction_factor=reduction_factor
    )


class _SeededPopulation:
    """What our PBT and PB2 add to Ray's: synchronous perturbation points (every trial reaches
    one before any is copied) whose random choices come from generators seeded with `seed` (Ray
    still skips a copy whose donor's checkpoint is being saved, as timing has it), and no
    perturbation point at a trial's last report (`max_reports`): it would pause every trial
    only to end it. Mixed in before Ray's class."""

    def _seed(self, seed: int, max_reports: int | None) -> None:
        import random

        import numpy as np

        self._max_reports = max_reports
        self._random_state = random.Random(seed).getstate()
        self._numpy_state = np.random.RandomState(seed).get_state()

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        if self._max_reports is not None and result.get(self._time_attr, 0) >= self._max_reports:
            return self.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def _checkpoint_or_exploit(self, *args: Any, **kwargs: Any) -> None:
        import random

        import numpy as np

        outside, numpy_outside = random.getstate(), np.random.get_state()
        random.setstate(self._random_state)
        np.random.set_state(self._numpy_state)
        try:
            super()._checkpoint_or_exploit(*args, **kwargs)
        finally:
            self._random_state, self._numpy_state = random.getstate(), np.random.get_state()
            random.setstate(outside)
            np.random.set_state(numpy_outside)


def hyperopt_search(*, prior: list[tuple[dict, float]], **settings: Any) -> Searcher:
    """Ray's HyperOptSearch whose hyperopt `Trials` start with the `prior` trials (searched
    values, score) as finished ones, so that its TPE models them as if it had run them (and
    counts them among its random start). `settings`: HyperOptSearch's own arguments."""
    from hyperopt import base
    from hyperopt.fmin import generate_trial
    from ray.tune.search.hyperopt import HyperOptSearch

    class HyperOptSearchWithPrior(HyperOptSearch):
        def _setup_hyperopt(self) -> None:
            super()._setup_hyperopt()
            loss_sign = -1.0 if self._mode == "max" else 1.0  # hyperopt minimises
            trials = self._hpopt_trials
            docs = []
            for tid, (params, score) in zip(trials.new_trial_ids(len(prior)), prior, strict=True):
                point = dict(params)
                self._convert_categories_to_indices(point)  # a choice's index, not its value
                doc = generate_trial(tid, point)
                doc["state"] = base.JOB_STATE_DONE
                doc["result"] = {"loss": loss_sign * score, "status": base.STATUS_OK}
                docs.append(doc)
            trials.insert_trial_docs(docs)
            trials.refresh()

    return HyperOptSearchWithPrior(**settings)


def population_based_training(
    *, seed: int, max_reports: int | None = None, **settings: Any
) -> TrialScheduler:
    """Ray's PopulationBasedTraining, seeded and synchronous (`_SeededPopulation`).
    `settings`: PBT's own arguments."""
    from ray.tune.schedulers import PopulationBasedTraining

    class SeededPopulationBasedTraining(_SeededPopulation, PopulationBasedTraining):
        def __init__(self) -> None:
            super().__init__(synch=True, **settings)
            self._seed(seed, max_reports)

    return SeededPopulationBasedTraining()


def population_based_bandits(
    *,
    seed: int,
    hyperparam_bounds: dict[str, tuple[float, float]],
    log_scaled: frozenset[str],
    explore: Callable[[dict], dict],
    max_reports: int | None = None,
    **settings: Any,
) -> TrialScheduler:
    """Ray's PB2 (Population Based Bandits), seeded and synchronous (`_SeededPopulation`), which
    models the `log_scaled` hyperparameters by their logarithm; `explore` gets every new config
    in the sweep's own terms. `settings`: PB2's own arguments."""
    import math

    from ray.tune.schedulers.pb2 import PB2

    def logs(config: dict) -> dict:
        return {k: math.log(v) if k in log_scaled else v for k, v in config.items()}

    class InLogSpace:
        """A trial as PB2's explore step sees it: its name, and its config in log terms."""

        def __init__(self, trial: Trial) -> None:
            self.trial, self.config = trial, logs(trial.config)

        def __str__(self) -> str:
            return str(self.trial)

    class SeededPopulationBasedBandits(_SeededPopulation, PB2):
        def __init__(self) -> None:
            super().__init__(synch=True, hyperparam_bounds=hyperparam_bounds, **settings)
            self._seed(seed, max_reports)
            self._hyperparam_bounds_flat = {
                name: tuple(map(math.log, bounds)) if name in log_scaled else bounds
                for name, bounds in hyperparam_bounds.items()
            }

        def _save_trial_state(self, state: Any, time: int, result: dict, trial: Trial) -> Any:
            score = super()._save_trial_state(state, time, result, trial)
            last = self.data.index[-1]
            for name in log_scaled:
                self.data.loc[last, name] = math.log(self.data.loc[last, name])
            return score

        def _get_new_config(self, trial: Trial, trial_to_clone: Trial) -> tuple[dict, dict]:
            config, operations = super()._get_new_config(trial, InLogSpace(trial_to_clone))
            exps = {k: math.exp(v) if k in log_scaled else v for k, v in config.items()}
            return explore(exps), operations

    return SeededPopulationBasedBandits()
