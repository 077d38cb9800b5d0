"""The search algorithms: one registry, name -> how to build it and how to describe it.

Adding an algorithm is one entry in `ALGORITHMS`; the sweep file's allowed names, the JSON
Schema, the errors and the CLI help all come from it. Each factory imports its library lazily,
so validating a sweep file never imports Ray, Optuna or HyperOpt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hpo.search.ray_compat import hyperopt_search
from hpo.search.space import DefineByRun, Dimension, PastTrial, is_conditional

if TYPE_CHECKING:
    from ray.tune.search import Searcher


@dataclass(frozen=True)
class SearchSettings:
    """What every factory may use: the sweep's `search` section, resolved."""

    seed: int
    n_startup_trials: int
    max_concurrent: int
    metric: str = "accuracy"
    mode: str = "max"
    space: dict[str, Dimension] = field(default_factory=dict)
    prior: list[PastTrial] = field(default_factory=list)
    """Finished trials the searcher starts from (`hpo extend`, `warm_start`)."""
    costs: tuple[str, ...] = ()
    """Serving costs minimised next to `metric`: a multi-objective search."""

    @property
    def conditional(self) -> bool:
        """The space has keys that only some strategies use: the searcher owns the space
        (define-by-run) and Tune's `param_space` stays empty."""
        return is_conditional(self.space)

    @property
    def owns_space(self) -> bool:
        return optuna_owns_space(self.space, self.costs)


def optuna_owns_space(space: dict[str, Dimension], costs: tuple[str, ...]) -> bool:
    """Whether an Optuna searcher takes the space itself (define-by-run), leaving Tune's
    `param_space` empty: for a conditional space, and for several objectives, which Tune
    cannot hand over with the space."""
    return is_conditional(space) or bool(costs)


@dataclass(frozen=True)
class Algorithm:
    """A search algorithm.

    Attributes:
        summary: one line for the JSON Schema and the CLI help.
        build: makes the Tune searcher.
        choices_as_grid: runs `choice` dimensions as grids (every combination).
        accepts_grid: whether `{grid: [...]}` dimensions may appear in the space.
        conditional: whether it searches conditional spaces (keys of one strategy only).
        takes_prior: whether it learns from finished trials it is given (`hpo extend`,
            `warm_start`).
    """

    summary: str
    build: Callable[[SearchSettings], Searcher]
    choices_as_grid: bool = False
    accepts_grid: bool = False
    conditional: bool = True
    takes_prior: bool = True


def _quiet_optuna() -> None:
    """Optuna's progress logs, and its warnings that the multivariate and grouped TPE are
    experimental (they have been since 2020), stay out of the sweep's output."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


STUDY = "hpo"


def _optuna(settings: SearchSettings, sampler: Any) -> Searcher:
    """Ray's OptunaSearch around `sampler`; for a conditional space, define-by-run. With a
    prior, its study already holds those trials, so the sampler's model starts from them."""
    from ray.tune.search.optuna import OptunaSearch

    _quiet_optuna()
    study = {"storage": _study_with(settings), "study_name": STUDY} if settings.prior else {}
    if not settings.owns_space:  # Tune hands the objective over with the space
        return OptunaSearch(sampler=sampler, **study)
    metric, mode = settings.metric, settings.mode
    if settings.costs:  # Optuna's samplers keep a Pareto front of several objectives
        metric, mode = [metric, *settings.costs], [mode, *["min"] * len(settings.costs)]
    return OptunaSearch(
        space=DefineByRun(settings.space), metric=metric, mode=mode, sampler=sampler, **study
    )


def _study_with(settings: SearchSettings) -> Any:
    """An in-memory Optuna storage holding one study of the prior's trials."""
    import optuna

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(
        storage=storage,
        study_name=STUDY,
        direction="maximize" if settings.mode == "max" else "minimize",
    )
    study.add_trials([past.as_optuna_trial(settings.space) for past in settings.prior])
    return storage


def _random(settings: SearchSettings) -> Searcher:
    """Tune's own random sampling; Optuna's for a conditional space, which Tune cannot skip
    keys in, and for several objectives (its study keeps their front)."""
    if settings.conditional or settings.costs:
        from optuna.samplers import RandomSampler

        return _optuna(settings, RandomSampler(seed=settings.seed))
    return _variant_generator(settings)


def _variant_generator(settings: SearchSettings) -> Searcher:
    from ray.tune.search import BasicVariantGenerator

    # Tune ignores TuneConfig.max_concurrent_trials for a generator passed in: set it here.
    return BasicVariantGenerator(random_state=settings.seed, max_concurrent=settings.max_concurrent)


def _optuna_tpe(settings: SearchSettings) -> Searcher:
    from optuna.samplers import TPESampler

    # group: the multivariate model splits a conditional space into the sets of keys that
    # occur together, instead of falling back to independent sampling
    sampler = TPESampler(
        seed=settings.seed,
        n_startup_trials=settings.n_startup_trials,
        multivariate=True,
        group=settings.conditional,
    )
    return _optuna(settings, sampler)


def _optuna_gp(settings: SearchSettings) -> Searcher:
    from optuna.samplers import GPSampler

    return _optuna(
        settings, GPSampler(seed=settings.seed, n_startup_trials=settings.n_startup_trials)
    )


def _hyperopt_tpe(settings: SearchSettings) -> Searcher:
    """HyperOpt's TPE; with a prior, its history already holds those trials."""
    return hyperopt_search(
        prior=[(past.params, past.score) for past in settings.prior],
        n_initial_points=settings.n_startup_trials,
        random_state_seed=settings.seed,
    )


ALGORITHMS: dict[str, Algorithm] = {
    "grid": Algorithm(
        "every combination of the grid and choice values",
        _variant_generator,
        choices_as_grid=True,
        accepts_grid=True,
        conditional=False,
        takes_prior=False,
    ),
    "random": Algorithm(
        "independent random samples", _random, accepts_grid=True, takes_prior=False
    ),
    "tpe": Algorithm("Tree-structured Parzen Estimator (Optuna)", _optuna_tpe),
    "hyperopt": Algorithm(
        "Tree-structured Parzen Estimator (HyperOpt)",
        _hyperopt_tpe,
        conditional=False,
    ),
    "gp": Algorithm("Gaussian-process Bayesian optimisation (Optuna GPSampler)", _optuna_gp),
}


def describe_algorithms() -> str:
    """`grid: every combination...; random: ...`, for the schema and the CLI help."""
    return "; ".join(f"{name}: {algorithm.summary}" for name, algorithm in ALGORITHMS.items())
