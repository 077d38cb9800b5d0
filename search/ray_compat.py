"""Every use of Ray Tune's private API, in one place. Each has a test in
tests/search/test_ray_compat.py that fails loudly when a Ray upgrade changes it.

- A trial's final status (PAUSED, TERMINATED, ERROR...) is not part of the public `Result`;
  the `ExperimentAnalysis` behind a `ResultGrid` (`_experiment_analysis`) holds the trials.
- Ray has no synchronous successive halving; Hyperband is a set of such brackets, so one
  bracket of `HyperBandScheduler` shaped by hand (`hyperband._Bracket`) is one.

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
    from ray.tune.schedulers.hyperband import _Bracket

    class SynchronousSuccessiveHalving(HyperBandScheduler):
        def _create_bracket(self, s: int) -> Any:
            return _Bracket(
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
