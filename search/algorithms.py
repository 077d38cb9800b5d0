"""The search algorithms: one registry, name -> how to build it and how to describe it.

Adding an algorithm is one entry in `ALGORITHMS`; the sweep file's allowed names, the JSON
Schema, the errors and the CLI help all come from it. Each factory imports its library lazily,
so validating a sweep file never imports Ray, Optuna or HyperOpt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ray.tune.search import Searcher


@dataclass(frozen=True)
class SearchSettings:
    """What every factory may use: the sweep's `search` section, resolved."""

    seed: int
    n_startup_trials: int
    max_concurrent: int


@dataclass(frozen=True)
class Algorithm:
    """A search algorithm.

    Attributes:
        summary: one line for the JSON Schema and the CLI help.
        build: makes the Tune searcher.
        choices_as_grid: runs `choice` dimensions as grids (every combination).
        accepts_grid: whether `{grid: [...]}` dimensions may appear in the space.
    """

    summary: str
    build: Callable[[SearchSettings], Searcher]
    choices_as_grid: bool = False
    accepts_grid: bool = False


def _variant_generator(settings: SearchSettings) -> Searcher:
    from ray.tune.search import BasicVariantGenerator

    # Tune ignores TuneConfig.max_concurrent_trials for a generator passed in: set it here.
    return BasicVariantGenerator(random_state=settings.seed, max_concurrent=settings.max_concurrent)


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _optuna_tpe(settings: SearchSettings) -> Searcher:
    from optuna.samplers import TPESampler
    from ray.tune.search.optuna import OptunaSearch

    _quiet_optuna()
    sampler = TPESampler(
        seed=settings.seed, n_startup_trials=settings.n_startup_trials, multivariate=True
    )
    return OptunaSearch(sampler=sampler)


def _optuna_gp(settings: SearchSettings) -> Searcher:
    from optuna.samplers import GPSampler
    from ray.tune.search.optuna import OptunaSearch

    _quiet_optuna()
    return OptunaSearch(
        sampler=GPSampler(seed=settings.seed, n_startup_trials=settings.n_startup_trials)
    )


def _hyperopt_tpe(settings: SearchSettings) -> Searcher:
    from ray.tune.search.hyperopt import HyperOptSearch

    return HyperOptSearch(
        n_initial_points=settings.n_startup_trials, random_state_seed=settings.seed
    )


ALGORITHMS: dict[str, Algorithm] = {
    "grid": Algorithm(
        "every combination of the grid and choice values",
        _variant_generator,
        choices_as_grid=True,
        accepts_grid=True,
    ),
    "random": Algorithm("independent random samples", _variant_generator, accepts_grid=True),
    "tpe": Algorithm("Tree-structured Parzen Estimator (Optuna)", _optuna_tpe),
    "hyperopt": Algorithm("Tree-structured Parzen Estimator (HyperOpt)", _hyperopt_tpe),
    "gp": Algorithm("Gaussian-process Bayesian optimisation (Optuna GPSampler)", _optuna_gp),
}


def describe_algorithms() -> str:
    """`grid: every combination...; random: ...`, for the schema and the CLI help."""
    return "; ".join(f"{name}: {algorithm.summary}" for name, algorithm in ALGORITHMS.items())
