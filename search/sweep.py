"""The sweep file: its pydantic model, and loading it from YAML with `${VAR}` expansion and
`--set key.path=value` overrides. Every mistake becomes a `UserError` naming the key to fix."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from search.algorithms import ALGORITHMS, Algorithm
from search.schedulers import SCHEDULER_NAMES, FifoConfig, SchedulerConfig
from search.space import DimensionField, check_space
from serve.config import ServeConfig
from trainables.config import DataConfig, StrictModel, TrainConfig
from trainables.errors import UserError
from trainables.metrics import METRICS

DEFAULT_ENV = {"HPO_DATA": "../shared/data"}
"""Variables that expand even when unset: HPO_DATA is the shared data folder beside the repo."""

AlgorithmName = Literal[tuple(ALGORITHMS)]  # type: ignore[valid-type]
MetricName = Literal[tuple(METRICS)]  # type: ignore[valid-type]
SchedulerName = Literal[SCHEDULER_NAMES]  # type: ignore[valid-type]
_EPOCHS = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*epochs?\s*$")


class SearchConfig(StrictModel):
    algorithm: AlgorithmName = Field(default="tpe", description="How the next trial is chosen.")
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
        default_factory=lambda: list(ALGORITHMS), min_length=1, description="Algorithms to compare."
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
    metric: MetricName = Field(default="accuracy", description="Validation metric to optimise.")
    mode: Literal["max", "min"] | None = Field(
        default=None, description="max or min; default: min for loss, max otherwise."
    )
    search: SearchConfig = SearchConfig()
    scheduler: SchedulerConfig = FifoConfig(name="fifo")
    space: dict[str, DimensionField] = Field(
        description="Hyperparameter -> distribution ({loguniform: [lo, hi]}, {choice: [...]}...)"
    )
    train: TrainConfig = TrainConfig()
    serve: ServeConfig = ServeConfig()
    compare: CompareConfig = CompareConfig()
    storage: str = Field(default="./runs", description="Where run dirs are written.")

    @model_validator(mode="after")
    def _consistent(self) -> "Sweep":
        expected = "min" if self.metric == "loss" else "max"
        if self.mode is None:
            object.__setattr__(self, "mode", expected)
        elif self.mode != expected:
            raise ValueError(f"mode: {self.metric} should be {expected}imised; set mode: {expected}")
        check_space(self.space)
        grids = [name for name, dim in self.space.items() if dim.kind == "grid"]
        if grids and not self.algorithm.accepts_grid:
            raise ValueError(
                f"space.{grids[0]}: grid values need search.algorithm grid or random; "
                f"with {self.search.algorithm}, write {{choice: [...]}}"
            )
        if self.search.algorithm == "grid":
            continuous = [
                name for name, d in self.space.items() if d.kind not in ("constant", "choice", "grid")
            ]
            if continuous:
                raise ValueError(
                    f"space.{continuous[0]}: search.algorithm grid needs grid or choice values, "
                    f"not {self.space[continuous[0]].kind}"
                )
        if not any(dim.is_searched for dim in self.space.values()):
            raise ValueError("space: nothing to search; give at least one distribution")
        return self

    def num_trials(self) -> int:
        """Trials this sweep runs: num_samples, times every combination of the grid values."""
        as_grid = ("grid", "choice") if self.algorithm.choices_as_grid else ("grid",)
        combinations = math.prod(len(d.args) for d in self.space.values() if d.kind in as_grid)
        return self.search.trials_requested() * combinations

    @property
    def algorithm(self) -> Algorithm:
        return ALGORITHMS[self.search.algorithm]


# --- loading -------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, where: str = "") -> Any:
    """Expands `${VAR}` and `${VAR:-default}` in every string of a parsed YAML tree."""
    if isinstance(value, dict):
        return {k: expand_env(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name) or default or DEFAULT_ENV.get(name)
        if found is None:
            raise UserError(
                f"{where}: environment variable {name} is not set; export it or write "
                f"${{{name}:-default}}"
            )
        return found

    return _VAR.sub(substitute, value)


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """Applies one `--set key.path=value`; the value is read as YAML (`2`, `[16, 32]`, `{...}`)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {assignment!r}: write key.path=value, e.g. search.num_samples=2")
    parts = key.strip().split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise UserError(f"--set {key}: {where} is a value, not a section")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise UserError(f"--set {key}: the value is not valid YAML ({err})") from None


def format_validation_error(err: ValidationError) -> str:
    """One line per problem: `search.algorithm: Input should be ...`, no pydantic noise."""
    lines = []
    for problem in err.errors():
        loc = [str(part) for part in problem["loc"]]
        # drop the union tag pydantic inserts for the scheduler (scheduler.asha.x -> scheduler.x)
        if len(loc) > 1 and loc[0] == "scheduler" and loc[1] in SCHEDULER_NAMES:
            loc.pop(1)
        message = problem["msg"].removeprefix("Value error, ")
        if not loc:  # our own cross-field checks already name their key
            lines.append(message)
            continue
        if problem["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; `hpo schema` lists every key)"
        elif problem["type"] == "missing":
            message = "required key is missing"
        elif "input" in problem and problem["type"].startswith(("literal", "union_tag")):
            message = f"{message}; got {problem['input']!r}"
        lines.append(f"{'.'.join(loc) or '(top level)'}: {message}")
    return "\n".join(dict.fromkeys(lines))


def parse_sweep(tree: Any, source: str = "sweep file") -> Sweep:
    """Expands `${VAR}`s in a parsed YAML tree and validates it."""
    if not isinstance(tree, dict):
        raise UserError(f"{source}: expected a mapping of keys (name, model, data, ...)")
    try:
        return Sweep.model_validate(expand_env(tree))
    except ValidationError as err:
        raise UserError(f"{source} is invalid:\n{format_validation_error(err)}") from None


def load_sweep(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Sweep:
    """Reads, overrides, expands and validates a sweep file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"sweep file {path} does not exist") from None
    except OSError as err:
        raise UserError(f"sweep file {path} cannot be read: {err.strerror}") from None
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UserError(f"sweep file {path} is not valid YAML:\n{err}") from None
    if tree is None:
        tree = {}
    source = f"sweep file {path}"
    if not isinstance(tree, dict):
        raise UserError(f"{source}: expected a mapping of keys (name, model, data, ...)")
    for assignment in overrides:
        apply_override(tree, assignment)
    return parse_sweep(tree, source=source)


def sweep_to_yaml(sweep: Sweep) -> str:
    """The resolved sweep (variables expanded, defaults filled), as saved in the run dir."""
    tree = sweep.model_dump(mode="json", exclude={"space"})
    tree["space"] = {name: _dimension_to_yaml(dim) for name, dim in sweep.space.items()}
    return yaml.safe_dump(tree, sort_keys=False)


def _dimension_to_yaml(dim: Any) -> Any:
    if dim.kind == "constant":
        return dim.args[0]
    return {dim.kind: list(dim.args)}
