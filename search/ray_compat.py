"""Every use of Ray Tune's private API, in one place. Each has a test in
tests/search/test_ray_compat.py that fails loudly when a Ray upgrade changes it.

- A trial's final status (PAUSED, TERMINATED, ERROR...) is not part of the public `Result`;
  the `ExperimentAnalysis` behind a `ResultGrid` (`_experiment_analysis`) holds the trials.
- Ray has no synchronous successive halving; Hyperband is a set of such brackets, so one
  bracket of `HyperBandScheduler` shaped by hand (`hyperband._Bracket`) is one.
- Ray's bracket, once finished, stops the trials it paused but misses one whose pause is still
  saving its checkpoint: that trial ends up PAUSED for ever and the sweep never ends. Both our
  schedulers use a bracket that stops it too (`_Bracket.cleanup_full`).
- Ray's PBT draws its choices (whom to copy, how to perturb) from the process-wide `random`;
  ours draws them from its own seeded state, swapped in around the one method that decides
  (`PopulationBasedTraining._checkpoint_or_exploit`).

Ray is imported inside the functions: the sweep file's validation imports this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ray.tune import ResultGrid
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler


def trials_of(results: ResultGrid) -> list[Trial]:
    """The trials behind `results`, in the same order: their id, config and final status."""
    return list(results._experiment_analysis.trials)


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
    """Ray's HyperBandScheduler with brackets that stop every trial they paused."""
    from ray.tune.schedulers import HyperBandScheduler

    bracket = _bracket_class()

    class Hyperband(HyperBandScheduler):
        def _create_bracket(self, s: int) -> Any:
            return bracket(
                time_attr=self._time_attr,
                max_trials=self._get_n0(s),
                init_t_attr=self._get_r0(s),
                max_t_attr=self._max_t_attr,
                eta=self._eta,
                s=s,
                stop_last_trials=self._stop_last_trials,
            )

    return Hyperband(time_attr=time_attr, max_t=max_t, reduction_factor=reduction_factor)


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


def population_based_training(
    *, seed: int, max_reports: int | None = None, **settings: Any
) -> TrialScheduler:
    """Ray's PopulationBasedTraining, synchronous (every trial reaches a perturbation point
    before any is copied), with its random choices drawn from a generator seeded with `seed`
    (Ray still skips a copy whose donor's checkpoint is being saved, as timing has it). A
    trial's last report
    (`max_reports`) is no perturbation point: it would pause every trial only to end it.
    `settings`: PBT's own arguments."""
    import random

    from ray.tune.schedulers import PopulationBasedTraining

    class SeededPopulationBasedTraining(PopulationBasedTraining):
        def __init__(self) -> None:
            super().__init__(synch=True, **settings)
            self._random_state = random.Random(seed).getstate()

        def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
            if max_reports is not None and result.get(self._time_attr, 0) >= max_reports:
                return self.CONTINUE
            return super().on_trial_result(tune_controller, trial, result)

        def _checkpoint_or_exploit(self, *args: Any, **kwargs: Any) -> None:
            outside = random.getstate()
            random.setstate(self._random_state)
            try:
                super()._checkpoint_or_exploit(*args, **kwargs)
            finally:
                self._random_state = random.getstate()
                random.setstate(outside)

    return SeededPopulationBasedTraining()
