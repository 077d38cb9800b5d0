"""The trial schedulers: one small config class each, which is both the sweep file's
`scheduler:` section (selected by `name`) and the factory of the Ray Tune scheduler.

Budgets are written in epochs, as users think of them; Tune counts reports
(`training_iteration`), and a trial reports `train.evals_per_epoch` times per epoch, so each
config converts epochs to reports with `Budget`. Adding a scheduler is one class here and its
entry in `SCHEDULERS`, from which the sweep file's union, the JSON Schema and the CLI help come.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal, Union

from pydantic import Field

from hpo.core.config import StrictModel
from hpo.search.ray_compat import hyperband, successive_halving
from hpo.trainables.job import reports_in

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
    summary: ClassVar[str]
    """One line for the JSON Schema and the CLI help."""

    max_epochs: float = Field(default=3, gt=0, description="Epochs a trial trains at most.")

    def build(self, budget: Budget) -> TrialScheduler:
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
    summary = "every trial trains to max_epochs"

    def build(self, budget: Budget) -> TrialScheduler:
        from ray.tune.schedulers import FIFOScheduler

        return FIFOScheduler()


class AshaConfig(_HalvingScheduler):
    """Asynchronous successive halving (Li et al. 2020): stops trials that fall behind at rungs."""

    name: Literal["asha"]
    summary = "asynchronous successive halving: stops trials that fall behind at rungs"
    brackets: int = Field(default=1, ge=1, description="Brackets of different grace periods.")

    def build(self, budget: Budget) -> TrialScheduler:
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
    summary = "Hyperband: brackets of synchronous halving, pausing and resuming trials"
    reduction_factor: float = Field(default=3, gt=1)

    def build(self, budget: Budget) -> TrialScheduler:
        return hyperband(
            time_attr=TIME_ATTR,
            max_t=budget.reports(self.max_epochs),
            reduction_factor=self.reduction_factor,
        )


class SuccessiveHalvingConfig(_HalvingScheduler):
    """Synchronous successive halving (Jamieson & Talwalkar 2016): all trials reach a rung,
    the best 1/reduction_factor go on; the others stop. Trials that finish a rung early pause."""

    name: Literal["successive_halving"]
    summary = "synchronous successive halving in one bracket sized to the trials"

    def build(self, budget: Budget) -> TrialScheduler:
        max_t, grace = budget.reports(self.max_epochs), self.grace_reports(budget)
        return successive_halving(
            time_attr=TIME_ATTR,
            max_t=max_t,
            grace_period=grace,
            reduction_factor=self.reduction_factor,
            num_trials=budget.num_trials,
            halvings=_halvings(max_t, grace, self.reduction_factor),
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
            for j, (previous, rung) in enumerate(zip([0, *rungs], rungs, strict=False))
        )
        return max(math.ceil(self.reduction_factor), math.floor(reports / per_trial))


class MedianConfig(_Scheduler):
    """Median stopping rule (Golovin et al. 2017): stops a trial whose best result is worse than
    the median of the other trials' running averages at the same point."""

    name: Literal["median"]
    summary = "median stopping rule: stops trials worse than the median so far"
    grace_period: float | None = Field(
        default=None, gt=0, description="Epochs before a trial can be stopped; default one eval."
    )
    min_samples_required: int = Field(
        default=3, ge=1, description="Other trials needed at a point before comparing."
    )

    def build(self, budget: Budget) -> TrialScheduler:
        from ray.tune.schedulers import MedianStoppingRule

        grace = 1 if self.grace_period is None else budget.reports(self.grace_period)
        return MedianStoppingRule(
            time_attr=TIME_ATTR,
            grace_period=grace,
            min_samples_required=self.min_samples_required,
        )


SCHEDULERS: dict[str, type[_Scheduler]] = {
    "fifo": FifoConfig,
    "asha": AshaConfig,
    "hyperband": HyperbandConfig,
    "successive_halving": SuccessiveHalvingConfig,
    "median": MedianConfig,
}
# Union of a tuple: the members come from the registry (X | Y cannot be built from a tuple).
SchedulerConfig = Annotated[Union[tuple(SCHEDULERS.values())], Field(discriminator="name")]  # noqa: UP007
"""The sweep file's `scheduler:` section: one of the SCHEDULERS, chosen by its `name`."""


def describe_schedulers() -> str:
    """`fifo: every trial trains...; asha: ...`, for the schema and the CLI help."""
    return "; ".join(f"{name}: {cls.summary}" for name, cls in SCHEDULERS.items())


def _halvings(max_t: int, grace_period: int, reduction_factor: float) -> int:
    """Enough halvings that the last rung is max_t (Ray caps each rung at max_t)."""
    return max(0, math.ceil(math.log(max_t / grace_period, reduction_factor) - 1e-9))


def _rungs(max_t: int, grace_period: int, reduction_factor: float) -> list[float]:
    """The reports at which synchronous successive halving decides, the last one max_t."""
    halvings = _halvings(max_t, grace_period, reduction_factor)
    return [min(max_t, grace_period * reduction_factor**j) for j in range(halvings + 1)]
