"""The `space` section: parsing its distributions and translating them to Ray Tune.

A dimension is written as a one-key mapping (`{loguniform: [1e-5, 3e-4]}`) or as a plain value,
which fixes that hyperparameter. Translation to Tune is one function, `to_tune_space`; the
searchers (Optuna, HyperOpt) convert Tune domains themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import PlainValidator, ValidationError, WithJsonSchema

from hpo.trainables.config import CONDITIONAL, Hyperparameters

RANGE_KINDS = ("uniform", "loguniform", "quniform", "randint")
"""The kinds of dimension drawn from a numeric range (the others list their values)."""
KINDS = (*RANGE_KINDS, "choice", "grid")


@dataclass(frozen=True)
class Dimension:
    """One searched (or fixed) hyperparameter: `kind` is one of KINDS or "constant"."""

    kind: str
    args: tuple[Any, ...]

    @property
    def is_searched(self) -> bool:
        return self.kind != "constant"


def _range(kind: str, args: Any, size: int) -> tuple[float, ...]:
    if not isinstance(args, list | tuple) or len(args) != size:
        shape = "[low, high]" if size == 2 else "[low, high, step]"
        raise ValueError(f"{kind} takes a list {shape}, got {args!r}")
    if not all(isinstance(a, int | float) and not isinstance(a, bool) for a in args):
        raise ValueError(f"{kind} bounds must be numbers, got {args!r}")
    low, high = args[0], args[1]
    if not low < high:
        raise ValueError(f"{kind} needs low < high, got [{low}, {high}]")
    if kind == "loguniform" and low <= 0:
        raise ValueError(f"loguniform needs low > 0, got {low}")
    if kind == "quniform" and args[2] <= 0:
        raise ValueError(f"quniform needs a step > 0, got {args[2]}")
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise ValueError(f"randint bounds must be whole numbers, got {args!r}")
    return tuple(args)


def parse_dimension(raw: Any) -> Dimension:
    """Reads one `space` entry; raises ValueError with a message that says how to write it."""
    if not isinstance(raw, dict):
        return Dimension("constant", (raw,))
    if len(raw) != 1 or next(iter(raw)) not in KINDS:
        raise ValueError(
            f"expected one of {', '.join(f'{{{k}: ...}}' for k in KINDS)} or a plain value, "
            f"got {raw!r}"
        )
    kind, args = next(iter(raw.items()))
    if kind in ("choice", "grid"):
        if not isinstance(args, list) or not args:
            raise ValueError(f"{kind} takes a non-empty list of values, got {args!r}")
        return Dimension(kind, tuple(args))
    return Dimension(kind, _range(kind, args, 3 if kind == "quniform" else 2))


_DISTRIBUTION_SCHEMA = {
    "description": "A distribution as a one-key mapping, or a plain value that fixes it.",
    "anyOf": [
        *(
            {
                "type": "object",
                "properties": {kind: {"type": "array", "items": {"type": "number"}}},
                "required": [kind],
                "additionalProperties": False,
            }
            for kind in RANGE_KINDS
        ),
        *(
            {
                "type": "object",
                "properties": {kind: {"type": "array", "minItems": 1}},
                "required": [kind],
                "additionalProperties": False,
            }
            for kind in ("choice", "grid")
        ),
        {"type": ["number", "string", "boolean", "null"]},
    ],
}

DimensionField = Annotated[
    Dimension, PlainValidator(parse_dimension), WithJsonSchema(_DISTRIBUTION_SCHEMA)
]


def _values_to_check(dim: Dimension) -> list[Any]:
    if dim.kind in ("constant", "choice", "grid"):
        return list(dim.args)
    return [dim.args[0], dim.args[1]]


def check_space(space: dict[str, Dimension]) -> None:
    """Checks names and value types against `Hyperparameters`; raises ValueError naming the key."""
    fields = Hyperparameters.model_fields
    for name, dim in space.items():
        if name not in fields:
            raise ValueError(
                f"space.{name}: unknown hyperparameter; searchable ones are {', '.join(fields)}"
            )
        if fields[name].annotation is int and dim.kind in ("uniform", "loguniform"):
            raise ValueError(
                f"space.{name}: takes whole numbers; use randint, choice or grid, not {dim.kind}"
            )
        for value in _values_to_check(dim):
            try:
                Hyperparameters.model_validate({name: value})
            except ValidationError as err:
                reason = err.errors()[0]["msg"]
                raise ValueError(f"space.{name}: {value!r} is not valid: {reason}") from None


def to_tune_space(space: dict[str, Dimension], *, grid_choices: bool = False) -> dict[str, Any]:
    """Translates the `space` section to a Tune `param_space`.

    Args:
        space: the parsed `space` section.
        grid_choices: run `choice` dimensions as grids too (the grid algorithm tries every
            combination of every discrete dimension).
    """
    from ray import tune

    def translate(dim: Dimension) -> Any:
        args = dim.args
        match dim.kind:
            case "constant":
                return args[0]
            case "uniform":
                return tune.uniform(*args)
            case "loguniform":
                return tune.loguniform(*args)
            case "quniform":
                return tune.quniform(*args)
            case "randint":
                return tune.randint(args[0], args[1] + 1)  # the sweep file's bounds are inclusive
            case "choice" if grid_choices:
                return tune.grid_search(list(args))
            case "choice":
                return tune.choice(list(args))
            case "grid":
                return tune.grid_search(list(args))
        raise AssertionError(f"unhandled kind {dim.kind}")

    return {name: translate(dim) for name, dim in space.items()}


def as_grid(space: dict[str, Dimension], points: int) -> dict[str, Dimension]:
    """The space as a grid, for grid search next to the other algorithms in `hpo compare`:
    ranges become `points` evenly spaced values (log-spaced for loguniform), choices a grid."""
    import numpy as np

    def discretise(dim: Dimension) -> Dimension:
        match dim.kind:
            case "constant" | "grid":
                return dim
            case "choice":
                return Dimension("grid", dim.args)
            case "loguniform":
                values = np.geomspace(dim.args[0], dim.args[1], points)
            case "uniform":
                values = np.linspace(dim.args[0], dim.args[1], points)
            case "quniform":
                low, high, step = dim.args
                values = np.round(np.linspace(low, high, points) / step) * step
            case "randint":
                values = np.round(np.linspace(dim.args[0], dim.args[1], points)).astype(int)
        return Dimension("grid", tuple(dict.fromkeys(v.item() for v in values)))

    return {name: discretise(dim) for name, dim in space.items()}


def to_optuna_distributions(space: dict[str, Dimension]) -> dict[str, Any]:
    """The searched dimensions as Optuna distributions, as Optuna's samplers see them: for the
    importance analysis of trials and the past trials a searcher starts from."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    def translate(dim: Dimension) -> Any:
        match dim.kind:
            case "uniform":
                return FloatDistribution(dim.args[0], dim.args[1])
            case "quniform":
                return FloatDistribution(dim.args[0], dim.args[1], step=dim.args[2])
            case "loguniform":
                return FloatDistribution(dim.args[0], dim.args[1], log=True)
            case "randint":
                return IntDistribution(dim.args[0], dim.args[1])
        return CategoricalDistribution(list(dim.args))

    return {name: translate(dim) for name, dim in space.items() if dim.is_searched}


def is_conditional(space: dict[str, Dimension]) -> bool:
    """Whether `strategy` is searched and so is a key that only one strategy uses
    (`freeze_layers`, `lora_*`): then only the trials of that strategy draw it."""
    strategy = space.get("strategy")
    searched = strategy is not None and strategy.is_searched
    return searched and any(dim.is_searched for name, dim in space.items() if name in CONDITIONAL)


@dataclass(frozen=True)
class DefineByRun:
    """The space as an Optuna define-by-run function: `strategy` first, then the keys of the
    strategy drawn, so a LoRA rank exists only in LoRA trials and the sampler never models it
    for the others (without `strategy`, every key). Returns the constants (Ray's OptunaSearch
    adds them)."""

    space: dict[str, Dimension]

    def __call__(self, trial: Any) -> dict[str, Any]:
        unconditional = {n: d for n, d in self.space.items() if n not in CONDITIONAL}
        values = {name: _suggest(trial, name, dim) for name, dim in unconditional.items()}
        strategy = values.get("strategy")
        for name, dim in self.space.items():
            if name in CONDITIONAL and strategy in (None, CONDITIONAL[name]):
                values[name] = _suggest(trial, name, dim)
        return {n: v for n, v in values.items() if not self.space[n].is_searched}


def _suggest(trial: Any, name: str, dim: Dimension) -> Any:
    """One dimension drawn through an Optuna trial (a constant is returned as it is)."""
    args = dim.args
    match dim.kind:
        case "constant":
            return args[0]
        case "uniform":
            return trial.suggest_float(name, *args)
        case "loguniform":
            return trial.suggest_float(name, *args, log=True)
        case "quniform":
            return trial.suggest_float(name, args[0], args[1], step=args[2])
        case "randint":
            return trial.suggest_int(name, *args)
        case "choice":
            return trial.suggest_categorical(name, list(args))
    raise AssertionError(f"{dim.kind} is not searched define-by-run")


@dataclass(frozen=True)
class PastTrial:
    """A finished trial a searcher starts from (`hpo extend`, `warm_start`): its searched
    hyperparameters and its best score."""

    params: dict[str, Any]
    score: float

    def as_optuna_trial(self, space: dict[str, Dimension]) -> Any:
        """The trial for an Optuna study; raises ValueError when it does not fit `space`."""
        from optuna.trial import create_trial

        distributions = to_optuna_distributions(space)
        if not self.params or not set(self.params) <= set(distributions):
            raise ValueError("not a point of this space")
        return create_trial(
            params=self.params,
            distributions={k: distributions[k] for k in self.params},
            value=self.score,
        )


def past_trials(
    trials: list[dict[str, Any]], space: dict[str, Dimension]
) -> tuple[list[PastTrial], int]:
    """The trials (records of trials.json) that fit `space`: every searched key it has a value
    for lies in its range or choices; returns them and how many did not fit."""
    fitting, left_out = [], 0
    for trial in trials:
        if trial.get("best_metric") is None:
            continue
        past = PastTrial(
            {k: trial["config"][k] for k in space if space[k].is_searched and k in trial["config"]},
            float(trial["best_metric"]),
        )
        try:
            past.as_optuna_trial(space)
        except ValueError:  # a value outside this space's range or choices
            left_out += 1
            continue
        fitting.append(past)
    return fitting, left_out
