"""The sweep file as a pydantic model: its own sections (`search`, `compare`) and the ones that
live with their parts (`data`, `train` in hpo.trainables, `scheduler` in hpo.search.schedulers,
`serve` in hpo.serve.config). Reading a file is `hpo.search.sweepfile`."""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from hpo.core.config import StrictModel
from hpo.search.algorithms import ALGORITHMS, Algorithm, describe_algorithms, optuna_owns_space
from hpo.search.schedulers import (
    PBT_MUTABLE,
    SCHEDULERS,
    FifoConfig,
    PopulationConfig,
    SchedulerConfig,
    describe_schedulers,
    is_population,
)
from hpo.search.space import DimensionField, check_space, is_conditional
from hpo.serve.config import ServeConfig
from hpo.trainables.config import CONDITIONAL, DataConfig, TrainConfig
from hpo.trainables.metrics import COSTS, METRICS, mode_of

AlgorithmName = Literal[tuple(ALGORITHMS)]  # type: ignore[valid-type]
MetricName = Literal[tuple(METRICS)]  # type: ignore[valid-type]
ObjectiveName = Literal[tuple(METRICS + COSTS)]  # type: ignore[valid-type]
Mode = Literal["max", "min"]
MULTI_OBJECTIVE_ALGORITHMS = ("tpe", "random", "grid")
SchedulerName = Literal[tuple(SCHEDULERS)]  # type: ignore[valid-type]
_EPOCHS = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*epochs?\s*$")


class SearchConfig(StrictModel):
    algorithm: AlgorithmName = Field(
        default="tpe", description=f"How the next trial is chosen. {describe_algorithms()}."
    )
    num_samples: int | None = Field(
        default=None,
        ge=1,
        description="Trials to run (default 8); for grid, how often the whole grid runs "
        "(default 1).",
    )
    max_concurrent: int = Field(default=1, ge=1, description="Trials running at once.")
    seed: int = Field(default=0, description="Seed of the search algorithm.")
    time_budget_s: float | None = Field(
        default=None, gt=0, description="Stop launching trials after this many seconds."
    )
    n_startup_trials: int | None = Field(
        default=None,
        ge=1,
        description="tpe/hyperopt/gp: random trials before the model guides the search "
        "(default: a quarter of num_samples, at least 2).",
    )
    max_failures: int = Field(
        default=0,
        ge=-1,
        description="Times a failed trial (its process or a Ray Train worker killed, its node "
        "lost) is retried from its last checkpoint; -1: always.",
    )

    def trials_requested(self) -> int:
        default = 1 if self.algorithm == "grid" else 8
        return self.num_samples if self.num_samples is not None else default

    def startup_trials(self) -> int:
        if self.n_startup_trials is not None:
            return self.n_startup_trials
        return max(2, self.trials_requested() // 4)


class CompareConfig(StrictModel):
    """`hpo compare`: every algorithm x scheduler x seed on the same model, data, space and
    training budget."""

    algorithms: list[AlgorithmName] = Field(
        default_factory=lambda: list(ALGORITHMS),
        min_length=1,
        description=f"Algorithms to compare. {describe_algorithms()}.",
    )
    schedulers: list[SchedulerName] | None = Field(
        default=None,
        min_length=1,
        description="Schedulers to compare; default: the sweep's own. A scheduler named in "
        "`scheduler:` keeps its settings there; the others take their defaults.",
    )
    seeds: int = Field(
        default=3,
        ge=1,
        description="Repetitions of each algorithm and scheduler; seed k seeds the search "
        "and the training (classifier head, data order) unless `space` searches the seed.",
    )
    budget: int | str | None = Field(
        default=None,
        description="Training samples per arm (20000), or epochs of the training set "
        "('6 epochs'). Default: what the sweep's own search trains without early stopping, "
        "num_samples x max_epochs epochs.",
    )
    target: float | None = Field(
        default=None,
        description="Metric value for 'compute to reach the target'; default: the worst arm's "
        "final best, a value every arm reached.",
    )
    grid_points: int = Field(
        default=3, ge=2, description="Values per range when grid search runs next to the others."
    )

    @field_validator("budget")
    @classmethod
    def _budget_form(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value <= 0:
            raise ValueError("give a positive number of training samples")
        epochs = _EPOCHS.match(value) if isinstance(value, str) else None
        if isinstance(value, str) and (epochs is None or float(epochs[1]) <= 0):
            raise ValueError(
                f"write a number of samples (20000) or epochs ('6 epochs'), not {value!r}"
            )
        return value

    def budget_samples(self, train_examples: int, default_epochs: float) -> int:
        """The budget in training samples, for a training split of `train_examples`."""
        if isinstance(self.budget, int):
            return self.budget
        epochs = default_epochs if self.budget is None else float(_EPOCHS.match(self.budget)[1])
        return max(1, round(epochs * train_examples))


class Sweep(StrictModel):
    """One hyperparameter sweep: a model, a dataset, a search space and how to search it."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Names the run dir.")
    model: str = Field(description="A short alias (minilm), a Hub id, or a local folder.")
    data: DataConfig
    metric: MetricName | list[ObjectiveName] = Field(
        default="accuracy",
        description="Validation metric to optimise; or a list of objectives, the validation "
        f"metric first, then what serving costs ({', '.join(COSTS)}): [accuracy, latency_ms] "
        "searches the Pareto front of accuracy against latency.",
    )
    mode: Mode | list[Mode] | None = Field(
        default=None,
        description="max or min (a list, one per metric); default: min for loss and costs, "
        "max otherwise.",
    )
    search: SearchConfig = SearchConfig()
    scheduler: SchedulerConfig = Field(
        default=FifoConfig(name="fifo"),
        description=f"When trials stop early, chosen by `name`. {describe_schedulers()}.",
    )
    space: dict[str, DimensionField] = Field(
        description="Hyperparameter -> distribution ({loguniform: [lo, hi]}, {choice: [...]}...)"
    )
    train: TrainConfig = TrainConfig()
    serve: ServeConfig = ServeConfig()
    compare: CompareConfig = CompareConfig()
    storage: str = Field(default="./runs", description="Where run dirs are written.")
    warm_start: str | None = Field(
        default=None,
        description="A run dir (folder or URI) whose finished trials this sweep's searcher "
        "starts from (tpe, gp, hyperopt): the same task on more data, a related space. Trials "
        "with a value outside this space are left out.",
    )

    _costs: tuple[str, ...] = PrivateAttr(default=())
    _kept_variables: dict[tuple, tuple[str, str]] = PrivateAttr(default_factory=dict)
    """Strings written with variables that saved copies keep as written (see sweepfile)."""

    @field_validator("metric", mode="before")
    @classmethod
    def _known_metric(cls, value: Any) -> Any:
        """One message for a name that is neither a metric nor, in a list, a cost (instead of
        one per member of the field's union)."""
        names = value if isinstance(value, list) else [value]
        allowed = METRICS + COSTS if isinstance(value, list) else METRICS
        unknown = [name for name in names if name not in allowed]
        if unknown:
            raise ValueError(
                f"Input should be one of {', '.join(METRICS)}, or a list of one of them and "
                f"{', '.join(COSTS)} ([accuracy, latency_ms]); got {unknown[0]!r}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Sweep:
        self._split_objectives()
        expected = mode_of(self.metric)
        if self.mode is None:
            object.__setattr__(self, "mode", expected)
        elif self.mode != expected:
            raise ValueError(
                f"mode: {self.metric} should be {expected}imised; set mode: {expected}"
            )
        check_space(self.space)
        grids = [name for name, dim in self.space.items() if dim.kind == "grid"]
        if grids and not self.algorithm.accepts_grid:
            raise ValueError(
                f"space.{grids[0]}: grid values need search.algorithm grid or random; "
                f"with {self.search.algorithm}, write {{choice: [...]}}"
            )
        if self.search.algorithm == "grid":
            continuous = [
                name
                for name, d in self.space.items()
                if d.kind not in ("constant", "choice", "grid")
            ]
            if continuous:
                raise ValueError(
                    f"space.{continuous[0]}: search.algorithm grid needs grid or choice values, "
                    f"not {self.space[continuous[0]].kind}"
                )
        if not any(dim.is_searched for dim in self.space.values()):
            raise ValueError("space: nothing to search; give at least one distribution")
        self._check_strategies()
        if self.warm_start is not None and not self.algorithm.takes_prior:
            able = ", ".join(n for n, a in ALGORITHMS.items() if a.takes_prior)
            raise ValueError(
                f"warm_start: search.algorithm {self.search.algorithm} does not learn from "
                f"past trials; use {able}"
            )
        compared = self.compare.schedulers or [self.scheduler.name]
        population = next((name for name in compared if is_population(name)), None)
        if population and "random" not in self.compare.algorithms:
            raise ValueError(
                f"compare.schedulers: {population} runs with random search only; add random to "
                "compare.algorithms"
            )
        if isinstance(self.scheduler, PopulationConfig):
            self._check_population(self.scheduler)
        self._check_multi_objective()
        return self

    def _split_objectives(self) -> None:
        """`metric: [accuracy, latency_ms]` becomes `metric: accuracy` (what schedulers,
        checkpoints and the gate rank on) and `costs: (latency_ms,)`."""
        if isinstance(self.metric, str):
            if isinstance(self.mode, list):
                raise ValueError("mode: a list of modes goes with a list of metrics")
            return
        first, *costs = self.metric or [None]  # an empty list names no metric at all
        if first not in METRICS or not costs:
            raise ValueError(
                f"metric: list a validation metric ({', '.join(METRICS)}) first, then one or "
                f"more of {', '.join(COSTS)}, e.g. [accuracy, latency_ms]"
            )
        extra = [name for name in costs if name not in COSTS]
        if extra or len(set(costs)) < len(costs):
            raise ValueError(
                f"metric: after {first}, list what serving costs ({', '.join(COSTS)}), each "
                f"once; not {', '.join(extra) or 'a repeat'}"
            )
        modes = self.mode if isinstance(self.mode, list) else [self.mode] + ["min"] * len(costs)
        if len(modes) != len(self.metric):
            raise ValueError(f"mode: give one per metric ({len(self.metric)}), e.g. [max, min]")
        for name, mode in zip(costs, modes[1:], strict=True):
            if mode != "min":
                raise ValueError(f"mode: {name} is a cost, minimised; write min for it")
        object.__setattr__(self, "metric", first)
        object.__setattr__(self, "mode", modes[0])
        self._costs = tuple(costs)

    def _check_multi_objective(self) -> None:
        """Costs are searched by a searcher that keeps a front (Optuna's multi-objective
        samplers), trained without early stopping on the metric alone; `serve.select` needs
        latency among them."""
        if self.serve.select is not None and "latency_ms" not in self._costs:
            raise ValueError(
                f"serve.select: picks by latency; add it to the objectives: metric: "
                f"[{self.metric}, latency_ms]"
            )
        if not self._costs:
            return
        if self.search.algorithm not in MULTI_OBJECTIVE_ALGORITHMS:
            raise ValueError(
                f"search.algorithm: {self.search.algorithm} optimises one metric; with several "
                f"use {', '.join(MULTI_OBJECTIVE_ALGORITHMS)}"
            )
        if self.scheduler.name != "fifo":
            raise ValueError(
                f"scheduler: {self.scheduler.name} stops trials on {self.metric} alone, which "
                "would cut the fast, less accurate end of the front; use fifo with several "
                "metrics"
            )
        if self.warm_start is not None:
            raise ValueError("warm_start: a sweep of several metrics starts from scratch")

    @property
    def costs(self) -> tuple[str, ...]:
        """The serving costs minimised next to `metric` (empty for one metric)."""
        return self._costs

    @property
    def searcher_owns_space(self) -> bool:
        """Whether the searcher takes the space define-by-run and Tune's `param_space` stays
        empty (grid search, Tune's own, never does; it refuses a conditional space)."""
        return self.search.algorithm != "grid" and optuna_owns_space(self.space, self._costs)

    @property
    def scheduler_metric(self) -> str:
        """The validation metric the scheduler compares trials on (`scheduler.metric`, default
        `metric`)."""
        return self.scheduler.decides_on(self.metric)

    @property
    def scheduler_summary(self) -> str:
        """`asha scheduler`, and the metric it compares trials on where that is not `metric`."""
        on = f" on {self.scheduler_metric}" if self.scheduler_metric != self.metric else ""
        return f"{self.scheduler.name} scheduler{on}"

    @property
    def objectives(self) -> list[tuple[str, str]]:
        """(name, mode) of every objective, `metric` first."""
        return [(self.metric, self.mode), *((cost, "min") for cost in self._costs)]

    def _check_population(self, population: PopulationConfig) -> None:
        """PBT and PB2 need a population sampled once, one process per trial, something they
        can perturb, and perturbation points at evaluations."""
        name = population.name
        if self.search.algorithm not in ("random", "grid") or is_conditional(self.space):
            raise ValueError(
                f"scheduler {name}: search.algorithm {self.search.algorithm} cannot run next to "
                "it; it evolves a population that random (or grid) search samples once (and "
                "keys of one strategy only need a model-based searcher)"
            )
        if self.train.workers > 1 or self.train.launcher == "ray_train":
            raise ValueError(
                f"scheduler {name}: a trial takes over another's checkpoint in its own "
                "process; use train.workers: 1 and launcher auto or in_trial"
            )
        if self.search.max_concurrent < self.search.trials_requested():
            raise ValueError(
                f"scheduler {name}: the population trains side by side (a trial waiting to "
                "start takes no part in the copies); set search.max_concurrent to num_samples "
                f"({self.search.trials_requested()})"
            )
        mutated = population.mutated(self.space)
        kinds = ", ".join(sorted(population.perturbable_kinds))
        if not mutated:
            raise ValueError(
                f"scheduler.mutate: nothing to perturb; search one of {', '.join(PBT_MUTABLE)} "
                f"in space (as {kinds})"
            )
        for key in mutated:
            if key not in PBT_MUTABLE:
                raise ValueError(
                    f"scheduler.mutate: {name} cannot change {key} in a trial that goes on "
                    f"from a checkpoint; it may perturb {', '.join(PBT_MUTABLE)}"
                )
            if key not in self.space or not self.space[key].is_searched:
                raise ValueError(f"scheduler.mutate: {key} must be searched in space")
            if self.space[key].kind not in population.perturbable_kinds:
                raise ValueError(
                    f"scheduler.mutate: {name} perturbs {kinds} values, not "
                    f"space.{key}'s {self.space[key].kind}; use pbt, or search a range"
                )
        reports = population.perturbation_interval * self.train.evals_per_epoch
        interval, max_epochs = population.perturbation_interval, population.max_epochs
        if abs(reports - round(reports)) > 1e-9 or interval >= max_epochs:
            raise ValueError(
                f"scheduler.perturbation_interval: {interval} epochs must be a whole number of "
                f"evaluations (train.evals_per_epoch: {self.train.evals_per_epoch}) and less "
                f"than max_epochs ({max_epochs})"
            )

    def _check_strategies(self) -> None:
        """`strategy` set once; each strategy's own keys used by some trial; a conditional
        space searched by an algorithm that can skip keys."""
        strategy = self.space.get("strategy")
        if strategy is not None and self.train.strategy is not None:
            raise ValueError(
                "train.strategy and space.strategy: set the strategy in one place (space "
                "searches it; train fixes it)"
            )
        strategies = set(strategy.args) if strategy is not None else {self.train.strategy or "full"}
        for name in self.space:
            owner = CONDITIONAL.get(name)
            if owner is not None and owner not in strategies:
                raise ValueError(
                    f"space.{name}: only {owner} trials use it, and no trial here is one "
                    f"(strategy: {', '.join(sorted(strategies))})"
                )
        if is_conditional(self.space):
            if not self.algorithm.conditional:
                able = ", ".join(n for n, a in ALGORITHMS.items() if a.conditional)
                raise ValueError(
                    f"search.algorithm: {self.search.algorithm} cannot search keys that only "
                    f"some strategies use ({', '.join(n for n in self.space if n in CONDITIONAL)})"
                    f"; use {able}, or fix those keys to one value"
                )
            grids = [name for name, dim in self.space.items() if dim.kind == "grid"]
            if grids:
                raise ValueError(
                    f"space.{grids[0]}: a space with strategy-specific keys is searched "
                    "define-by-run; write {choice: [...]}, not {grid: [...]}"
                )

    def num_trials(self) -> int:
        """Trials this sweep runs: num_samples, times every combination of the grid values."""
        as_grid = ("grid", "choice") if self.algorithm.choices_as_grid else ("grid",)
        combinations = math.prod(len(d.args) for d in self.space.values() if d.kind in as_grid)
        return self.search.trials_requested() * combinations

    @property
    def algorithm(self) -> Algorithm:
        return ALGORITHMS[self.search.algorithm]
