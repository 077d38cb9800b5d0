"""The trial schedulers: one small config class each, which is both the sweep file's
`scheduler:` section (selected by `name`) and the factory of the Ray Tune scheduler.

Budgets are written in epochs, as users think of them; Tune counts reports
(`training_iteration`), and a trial reports `train.evals_per_epoch` times per epoch, so each
config converts epochs to reports with `Budget`. Adding a scheduler is one class here plus its
entry in `SchedulerConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal, Union

from pydantic import Field

from trainables.config import StrictModel
from trainables.job import reports_in

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler

TIME_ATTR = "training_iteration"


@dataclass(frozen=True)
class Budget:
    """Converts the sweep file's epochs to the scheduler's unit, reports."""

    evals_per_epoch: int
    num_trials: int

    def reports(self, epochs: float) -> int:
        return reports_in(epochs, self.evals_per_epoch)


class _Scheduler(StrictModel):
    max_epochs: float = Field(default=3, gt=0, description="Epochs a trial trains at most.")

    def build(self, budget: Budget) -> "TrialScheduler":
        raise NotImplementedError


class _HalvingScheduler(_Scheduler):
    grace_period: float | None = Field(
        default=None,
        gt=0,
        description="Epochs every trial gets before it can be stopped; default one evaluation.",
    )
    reduction_factor: float = Field(
        default=3, gt=1, description="Keep the best 1/reduction_factor at each rung."
    )

    def grace_reports(self, budget: Budget) -> int:
        if self.grace_period is None:
            return 1
        return budget.reports(self.grace_period)


class FifoConfig(_Scheduler):
    """Every trial trains to `max_epochs`."""

    name: Literal["fifo"]

    def build(self, budget: Budget) -> "TrialScheduler":
        from ray.tune.schedulers import FIFOScheduler

        return FIFOScheduler()


class AshaConfig(_HalvingScheduler):
    """Asynchronous successive halving (Li et al. 2020): stops trials that fall behind at rungs."""

    name: Literal["asha"]
    brackets: int = Field(default=1, ge=1, description="Brackets of different grace periods.")

    def build(self, budget: Budget) -> "TrialScheduler":
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(
            time_attr=TIME_ATTR,
            max_t=budget.reports(self.max_epochs),
            grace_period=self.grace_reports(budget),
            reduction_factor=self.reduction_factor,
            brackets=self.brackets,
        )


class HyperbandConfig(_Scheduler):
    """Hyperband (Li et al. 2017): brackets of synchronous halving; pauses and resumes trials."""

    name: Literal["hyperband"]
    reduction_factor: float = Field(default=3, gt=1)

    def build(self, budget: Budget) -> "TrialScheduler":
        from ray.tune.schedulers import HyperBandScheduler

        return HyperBandScheduler(
            time_attr=TIME_ATTR,
            max_t=budget.reports(self.max_epochs),
            reduction_factor=self.reduction_factor,
        )


class SuccessiveHalvingConfig(_HalvingScheduler):
    """Synchronous successive halving (Jamieson & Talwalkar 2016): all trials reach a rung,
    the best 1/reduction_factor go on; the others stop. Trials that finish a rung early pause."""

    name: Literal["successive_halving"]

    def build(self, budget: Budget) -> "TrialScheduler":
        return _successive_halving(
            max_t=budget.reports(self.max_epochs),
            grace_period=self.grace_reports(budget),
            reduction_factor=self.reduction_factor,
            num_trials=budget.num_trials,
        )

    def trials_within(self, reports: float, budget: Budget) -> int:
        """How many trials one bracket can start so that it trains about `reports` reports in
        all: trial k of n reaches rung j with n / reduction_factor**j others, and trains the
        reports between rungs once (it resumes from its checkpoint)."""
        rungs = _rungs(
            budget.reports(self.max_epochs), self.grace_reports(budget), self.reduction_factor
        )
        per_trial = sum(
            (rung - previous) / self.reduction_factor**j
            for j, (previous, rung) in enumerate(zip([0, *rungs], rungs))
        )
        return max(math.ceil(self.reduction_factor), math.floor(reports / per_trial))


class MedianConfig(_Scheduler):
    """Median stopping rule (Golovin et al. 2017): stops a trial whose best result is worse than
    the median of the other trials' running averages at the same point."""

    name: Literal["median"]
    grace_period: float | None = Field(
        default=None, gt=0, description="Epochs before a trial can be stopped; default one eval."
    )
    min_samples_required: int = Field(
        default=3, ge=1, description="Other trials needed at a point before comparing."
    )

    def build(self, budget: Budget) -> "TrialScheduler":
        from ray.tune.schedulers import MedianStoppingRule

        grace = 1 if self.grace_period is None else budget.reports(self.grace_period)
        return MedianStoppingRule(
            time_attr=TIME_ATTR,
            grace_period=grace,
            min_samples_required=self.min_samples_required,
        )


SchedulerConfig = Annotated[
    Union[FifoConfig, AshaConfig, HyperbandConfig, SuccessiveHalvingConfig, MedianConfig],
    Field(discriminator="name"),
]
SCHEDULER_CLASSES: dict[str, type[_Scheduler]] = {
    "fifo": FifoConfig,
    "asha": AshaConfig,
    "hyperband": HyperbandConfig,
    "successive_halving": SuccessiveHalvingConfig,
    "median": MedianConfig,
}
SCHEDULER_NAMES = tuple(SCHEDULER_CLASSES)


def _halvings(max_t: int, grace_period: int, reduction_factor: float) -> int:
    """Enough halvings that the last rung is max_t (Ray caps each rung at max_t)."""
    return max(0, math.ceil(math.log(max_t / grace_period, reduction_factor) - 1e-9))


def _rungs(max_t: int, grace_period: int, reduction_factor: float) -> list[float]:
    """The reports at which synchronous successive halving decides, the last one max_t."""
    halvings = _halvings(max_t, grace_period, reduction_factor)
    return [min(max_t, grace_period * reduction_factor**j) for j in range(halvings + 1)]


def _successive_halving(
    *, max_t: int, grace_period: int, reduction_factor: float, num_trials: int
) -> "TrialScheduler":
    """Ray's HyperBandScheduler restricted to one bracket that holds every trial.

    Ray Tune has no synchronous successive halving of its own, but Hyperband is a set of such
    brackets; this keeps Ray's bracket logic (pausing, promotion) and only fixes its shape.
    """
    from ray.tune.schedulers import HyperBandScheduler
    from ray.tune.schedulers.hyperband import _Bracket

    halvings = _halvings(max_t, grace_period, reduction_factor)

    class SynchronousSuccessiveHalving(HyperBandScheduler):
        def _create_bracket(self, s: int) -> _Bracket:
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
        time_attr=TIME_ATTR, max_t=max_t, reduction_factor=reduction_factor
    )
