"""The trial schedulers: one small config class each, which is both the sweep file's
`scheduler:` section (selected by `name`) and the factory of the Ray Tune scheduler.

Budgets are written in epochs, as users think of them; Tune counts reports
(`training_iteration`), and a trial reports `train.evals_per_epoch` times per epoch, so each
config converts epochs to reports with `SchedulerInputs`. Adding a scheduler is one class here
and its entry in `SCHEDULERS`, from which the sweep file's union, the JSON Schema and the CLI
help come.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import Field

from hpo.core.config import StrictModel
from hpo.search.ray_compat import (
    hyperband,
    population_based_bandits,
    population_based_training,
    successive_halving,
)
from hpo.search.space import KINDS, RANGE_KINDS, Dimension
from hpo.trainables.job import reports_in
from hpo.trainables.metrics import METRICS

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler

TIME_ATTR = "training_iteration"


@dataclass(frozen=True)
class SchedulerInputs:
    """What a scheduler is built from besides its own settings: the conversion of the sweep
    file's epochs to the scheduler's unit, reports; the trial count; and, for PBT, the space
    it perturbs and the seed of its choices."""

    evals_per_epoch: int
    num_trials: int
    space: dict[str, Dimension] = field(default_factory=dict)
    seed: int = 0

    def reports(self, epochs: float) -> int:
        return reports_in(epochs, self.evals_per_epoch)


class _Scheduler(StrictModel):
    summary: ClassVar[str]
    """One line for the JSON Schema and the CLI help."""

    max_epochs: float = Field(default=3, gt=0, description="Epochs a trial trains at most.")
    checkpoints_kept: ClassVar[int] = 1
    """Checkpoints Tune keeps per trial: its best (and always its latest)."""

    def build(self, inputs: SchedulerInputs) -> TrialScheduler:
        raise NotImplementedError

    def decides_on(self, sweep_metric: str) -> str:
        """The metric this scheduler compares trials on."""
        return sweep_metric


class _RankingScheduler(_Scheduler):
    """A scheduler that compares trials to decide which go on."""

    metric: Literal[tuple(METRICS)] | None = Field(  # type: ignore[valid-type]
        default=None,
        description="The validation metric trials are compared on when the scheduler decides "
        "(the searcher, the best checkpoint and the promotion gate keep the sweep's); default: "
        "the sweep's `metric`.",
    )

    def decides_on(self, sweep_metric: str) -> str:
        return self.metric or sweep_metric


class _HalvingScheduler(_RankingScheduler):
    grace_period: float | None = Field(
        default=None,
        gt=0,
        description="Epochs every trial gets before it can be stopped; default one evaluation.",
    )
    reduction_factor: float = Field(
        default=3, gt=1, description="Keep the best 1/reduction_factor at each rung."
    )

    def grace_reports(self, inputs: SchedulerInputs) -> int:
        if self.grace_period is None:
            return 1
        return inputs.reports(self.grace_period)


class FifoConfig(_Scheduler):
    """Every trial trains to `max_epochs`."""

    name: Literal["fifo"]
    summary = "every trial trains to max_epochs"

    def build(self, inputs: SchedulerInputs) -> TrialScheduler:
        from ray.tune.schedulers import FIFOScheduler

        return FIFOScheduler()


class AshaConfig(_HalvingScheduler):
    """Asynchronous successive halving (Li et al. 2020): stops trials that fall behind at rungs."""

    name: Literal["asha"]
    summary = "asynchronous successive halving: stops trials that fall behind at rungs"
    brackets: int = Field(default=1, ge=1, description="Brackets of different grace periods.")

    def build(self, inputs: SchedulerInputs) -> TrialScheduler:
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(
            time_attr=TIME_ATTR,
            max_t=inputs.reports(self.max_epochs),
            grace_period=self.grace_reports(inputs),
            reduction_factor=self.reduction_factor,
            brackets=self.brackets,
        )


class HyperbandConfig(_RankingScheduler):
    """Hyperband (Li et al. 2017): brackets of synchronous halving; pauses and resumes trials."""

    name: Literal["hyperband"]
    summary = "Hyperband: brackets of synchronous halving, pausing and resuming trials"
    reduction_factor: float = Field(default=3, gt=1)

    def build(self, inputs: SchedulerInputs) -> TrialScheduler:
        return hyperband(
            time_attr=TIME_ATTR,
            max_t=inputs.reports(self.max_epochs),
            reduction_factor=self.reduction_factor,
        )


class SuccessiveHalvingConfig(_HalvingScheduler):
    """Synchronous successive halving (Jamieson & Talwalkar 2016): all trials reach a rung,
    the best 1/reduction_factor go on; the others stop. Trials that finish a rung early pause."""

    name: Literal["successive_halving"]
    summary = "synchronous successive halving in one bracket sized to the trials"

    def build(self, inputs: SchedulerInputs) -> TrialScheduler:
        max_t, grace = inputs.reports(self.max_epochs), self.grace_reports(inputs)
        return successive_halving(
            time_attr=TIME_ATTR,
            max_t=max_t,
            grace_period=grace,
            reduction_factor=self.reduction_factor,
            num_trials=inputs.num_trials,
            halvings=_halvings(max_t, grace, self.reduction_factor),
        )

    def trials_within(self, reports: float, inputs: SchedulerInputs) -> int:
        """How many trials one bracket can start so that it trains about `reports` reports in
        all: trial k of n reaches rung j with n / reduction_factor**j others, and trains the
        reports between rungs once (it resumes from its checkpoint)."""
        rungs = halving_rungs(
            inputs.reports(self.max_epochs), self.grace_reports(inputs), self.reduction_factor
        )
        per_trial = sum(
            (rung - previous) / self.reduction_factor**j
            for j, (previous, rung) in enumerate(zip([0, *rungs], rungs, strict=False))
        )
        return max(math.ceil(self.reduction_factor), math.floor(reports / per_trial))


class MedianConfig(_RankingScheduler):
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

    def build(self, inputs: SchedulerInputs) -> TrialScheduler:
        from ray.tune.schedulers import MedianStoppingRule

        grace = 1 if self.grace_period is None else inputs.reports(self.grace_period)
        return MedianStoppingRule(
            time_attr=TIME_ATTR,
            grace_period=grace,
            min_samples_required=self.min_samples_required,
        )


PBT_MUTABLE = (
    "learning_rate",
    "weight_decay",
    "warmup_ratio",
    "lr_schedule",
    "dropout",
    "label_smoothing",
    "max_grad_norm",
    "lora_dropout",
)
"""What PBT may change in a trial that goes on from a checkpoint: not the batch size (the step
plan), the seed, the strategy or a shape (lora_r, freeze_layers)."""


class PopulationConfig(_RankingScheduler):
    """What PBT and PB2 share: a population that trains side by side and, every
    `perturbation_interval` epochs, the trials in the bottom quantile copy the checkpoint of
    one in the top quantile and go on with new values of the `mutate` hyperparameters.
    Synchronous, its random choices seeded (a copy whose donor's checkpoint is still being
    saved is skipped: that depends on timing)."""

    checkpoints_kept = 3  # a copied checkpoint must outlive its trial's next report
    perturbable_kinds: ClassVar[frozenset[str]] = frozenset(KINDS)
    """The kinds of `space` dimension it can give a new value."""

    perturbation_interval: float = Field(
        default=0.5, gt=0, description="Epochs between exploit-and-explore steps."
    )
    quantile_fraction: float = Field(
        default=0.25,
        ge=0,
        le=0.5,
        description="The bottom fraction copies the top fraction (at least one trial each).",
    )
    mutate: list[str] | None = Field(
        default=None,
        description=f"Hyperparameters to perturb; default every one `space` searches among "
        f"{', '.join(PBT_MUTABLE)} (PB2: ranges only).",
    )

    def mutated(self, space: dict[str, Dimension]) -> list[str]:
        if self.mutate is not None:
            return self.mutate
        return [
            name
            for name in PBT_MUTABLE
            if name in space
            and space[name].is_searched
            and space[name].kind in self.perturbable_kinds
        ]

    def _population_settings(self, inputs: SchedulerInputs) -> dict[str, Any]:
        """What Ray's PBT and PB2 are both built with."""
        return {
            "seed": inputs.seed,
            "max_reports": inputs.reports(self.max_epochs),
            "time_attr": TIME_ATTR,
            "perturbation_interval": inputs.reports(self.perturbation_interval),
            "quantile_fraction": self.quantile_fraction,
        }

    def _mutated_space(self, inputs: SchedulerInputs) -> dict[str, Dimension]:
        return {name: inputs.space[name] for name in self.mutated(inputs.space)}


class PbtConfig(PopulationConfig):
    """Population Based Training (Jaderberg et al. 2017): a copied trial's values are
    multiplied by a perturbation factor, moved to a neighbouring choice or drawn anew."""

    name: Literal["pbt"]
    summary = "Population Based Training: the worst trials copy the best ones and perturb them"
    resample_probability: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="Chance that a perturbed value is drawn anew from `space` instead of "
        "multiplied by a perturbation factor (or moved to a neighbouring choice).",
    )
    perturbation_factors: tuple[float, float] = Field(
        default=(1.2, 0.8), description="Factors a continuous value is multiplied by."
    )

    def build(self, inputs: SchedulerInputs) -> TrialScheduler:
        space = self._mutated_space(inputs)
        return population_based_training(
            **self._population_settings(inputs),
            hyperparam_mutations={name: _mutation(dim) for name, dim in space.items()},
            custom_explore_fn=WithinSpace(space),
            resample_probability=self.resample_probability,
            perturbation_factors=self.perturbation_factors,
        )


class Pb2Config(PopulationConfig):
    """Population Based Bandits (Parker-Holder et al. 2020): PBT whose copied trials get the
    values a Gaussian-process bandit expects to improve the metric most over the next
    interval, fitted to every trial's progress so far (log-scaled ranges by their logarithm).
    Efficient with small populations; it perturbs ranges, not choices."""

    name: Literal["pb2"]
    summary = "Population Based Bandits: PBT whose new values a Gaussian-process bandit picks"
    perturbable_kinds = frozenset(RANGE_KINDS)

    def build(self, inputs: SchedulerInputs) -> TrialScheduler:
        space = self._mutated_space(inputs)
        return population_based_bandits(
            **self._population_settings(inputs),
            hyperparam_bounds={name: (dim.args[0], dim.args[1]) for name, dim in space.items()},
            log_scaled=frozenset(n for n, dim in space.items() if dim.kind == "loguniform"),
            explore=WithinSpace(space),
        )


@dataclass(frozen=True)
class Resample:
    """Draws a range dimension anew for PBT's explore step, from the process-wide `random`,
    which PBT seeds around its decisions (a picklable callable: Tune saves the scheduler)."""

    dim: Dimension

    def __call__(self) -> float | int:
        import random

        low, high = self.dim.args[0], self.dim.args[1]
        match self.dim.kind:
            case "loguniform":
                return math.exp(random.uniform(math.log(low), math.log(high)))
            case "quniform":
                step = self.dim.args[2]
                return round(random.uniform(low, high) / step) * step
            case "randint":
                return random.randint(low, high)
        return random.uniform(low, high)


def _mutation(dim: Dimension) -> list | Resample:
    """PBT's form of a dimension: the list of choices (it moves to a neighbour or resamples),
    or a resampler of a range (it multiplies by a perturbation factor or resamples)."""
    return list(dim.args) if dim.kind in ("choice", "grid") else Resample(dim)


@dataclass(frozen=True)
class WithinSpace:
    """PBT's and PB2's last explore step: a value moved out of its range goes back to the
    nearest bound (a warm-up ratio above 1, a dropout of 1.2 would fail the trial), and a
    quniform value to its step."""

    space: dict[str, Dimension]

    def __call__(self, config: dict) -> dict:
        for name, dim in self.space.items():
            if dim.kind in RANGE_KINDS:
                config[name] = min(max(config[name], dim.args[0]), dim.args[1])
            if dim.kind == "quniform":
                config[name] = round(config[name] / dim.args[2]) * dim.args[2]
        return config


SCHEDULERS: dict[str, type[_Scheduler]] = {
    "fifo": FifoConfig,
    "asha": AshaConfig,
    "hyperband": HyperbandConfig,
    "successive_halving": SuccessiveHalvingConfig,
    "median": MedianConfig,
    "pbt": PbtConfig,
    "pb2": Pb2Config,
}
# Union of a tuple: the members come from the registry (X | Y cannot be built from a tuple).
SchedulerConfig = Annotated[Union[tuple(SCHEDULERS.values())], Field(discriminator="name")]  # noqa: UP007
"""The sweep file's `scheduler:` section: one of the SCHEDULERS, chosen by its `name`."""


def is_population(name: str) -> bool:
    """Whether the scheduler so named evolves a population (PBT, PB2)."""
    return issubclass(SCHEDULERS[name], PopulationConfig)


def describe_schedulers() -> str:
    """`fifo: every trial trains...; asha: ...`, for the schema and the CLI help."""
    return "; ".join(f"{name}: {cls.summary}" for name, cls in SCHEDULERS.items())


def _halvings(max_t: int, grace_period: int, reduction_factor: float) -> int:
    """Enough halvings that the last rung is max_t (Ray caps each rung at max_t)."""
    return max(0, math.ceil(math.log(max_t / grace_period, reduction_factor) - 1e-9))


def halving_rungs(max_t: int, grace_period: int, reduction_factor: float) -> list[float]:
    """The reports at which synchronous successive halving decides, the last one max_t."""
    halvings = _halvings(max_t, grace_period, reduction_factor)
    return [min(max_t, grace_period * reduction_factor**j) for j in range(halvings + 1)]
