"""Reading a sweep file: YAML, `--set key.path=value` overrides, `${VAR}` expansion, then
validation. Every mistake becomes a `UserError` naming the key to fix, one line per problem."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hpo.core.config import SweepFileWarning
from hpo.core.errors import UserError
from hpo.core.rundir import SWEEP_COPY
from hpo.core.storage import StorageDir
from hpo.search.schedulers import SCHEDULERS
from hpo.search.sweep import Sweep

DEFAULT_ENV = {"HPO_DATA": "../shared/data"}
"""Variables that expand even when unset: HPO_DATA is the shared data folder beside the repo."""
SAVED_VARIABLES = frozenset({"HPO_DATA", "HOME", "USER", "TMPDIR", "PWD"})
"""Variables whose values a run dir's saved sweep file (and a job's, a ConfigMap's) records.
Every other `${VAR}` is saved as written, so that no value from the environment, a secret
perhaps, lands in a file; loading the saved file expands it again."""

_VAR = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Path_ = tuple[str | int, ...]


def _expand_string(value: str, env: Mapping[str, str], where: str, keep: bool) -> str:
    """`value` with its variables expanded; with `keep`, the template to save instead: the
    SAVED_VARIABLES expanded, other variables and escapes as written."""

    def substitute(match: re.Match[str]) -> str:
        escaped, name, default = match.group(1), match.group(2), match.group(3)
        if escaped:
            return match.group(0) if keep else match.group(0)[1:]
        if keep and name not in SAVED_VARIABLES:
            return match.group(0)
        found = env.get(name) or default or DEFAULT_ENV.get(name)
        if found is None:
            raise UserError(
                f"{where}: environment variable {name} is not set; export it or write "
                f"${{{name}:-default}}"
            )
        return found

    return _VAR.sub(substitute, value)


def _walk(value: Any, path: Path_ = ()) -> list[tuple[Path_, str]]:
    """Every string of a parsed YAML tree, with its path of keys and indexes."""
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _walk(item, (*path, key))]
    if isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in _walk(item, (*path, i))]
    return [(path, value)] if isinstance(value, str) else []


def _where(path: Path_) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)[1:]


def _replace(tree: Any, path: Path_, value: Any) -> Any:
    if not path:
        return value
    copy = list(tree) if isinstance(tree, list) else dict(tree)
    copy[path[0]] = _replace(tree[path[0]], path[1:], value)
    return copy


def expand_env(value: Any, env: Mapping[str, str] | None = None) -> Any:
    """Expands `${VAR}` and `${VAR:-default}` in every string of a parsed YAML tree, from `env`
    (default: the process environment); `$${VAR}` stays a literal `${VAR}`."""
    env = os.environ if env is None else env
    for path, text in _walk(value):
        value = _replace(value, path, _expand_string(text, env, _where(path), keep=False))
    return value


def _kept_variables(tree: Any, env: Mapping[str, str]) -> dict[Path_, tuple[str, str]]:
    """Where a tree uses variables outside SAVED_VARIABLES: path -> (template, expanded)."""
    kept = {}
    for path, text in _walk(tree):
        template = _expand_string(text, env, _where(path), keep=True)
        if any(not match.group(1) for match in _VAR.finditer(template)):
            kept[path] = (template, _expand_string(text, env, _where(path), keep=False))
    return kept


def apply_override(tree: dict[str, Any], assignment: str) -> None:
    """Applies one `--set key.path=value`; the value is read as YAML (`2`, `[16, 32]`, `{...}`).

    `--set scheduler.name=KIND` switches the scheduler: the file's keys that KIND does not
    take (ASHA's grace period, say) are dropped with a warning naming them, instead of failing
    on keys the user never typed."""
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
    if parts == ["scheduler", "name"]:
        _drop_keys_of_another_kind(node, key)


def _drop_keys_of_another_kind(section: dict[str, Any], key: str) -> None:
    kind = SCHEDULERS.get(section["name"]) if isinstance(section["name"], str) else None
    if kind is None:
        return  # validation names the unknown kind
    dropped = [name for name in section if name != "name" and name not in kind.model_fields]
    for name in dropped:
        del section[name]
    if dropped:
        warnings.warn(
            f"--set {key}={section['name']}: dropped "
            f"{', '.join(f'scheduler.{name}' for name in dropped)}, which {section['name']} "
            "does not take",
            SweepFileWarning,
            stacklevel=3,
        )


def format_validation_error(err: ValidationError) -> str:
    """One line per problem: `search.algorithm: Input should be ...`, no pydantic noise."""
    lines = []
    for problem in err.errors():
        loc = [str(part) for part in problem["loc"]]
        # drop the union tag pydantic inserts for the scheduler (scheduler.asha.x -> scheduler.x)
        if len(loc) > 1 and loc[0] == "scheduler" and loc[1] in SCHEDULERS:
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


def parse_sweep(
    tree: Any, source: str = "sweep file", env: Mapping[str, str] | None = None
) -> Sweep:
    """Expands `${VAR}`s in a parsed YAML tree (from `env`, default the process environment)
    and validates it."""
    if not isinstance(tree, dict):
        raise UserError(f"{source}: expected a mapping of keys (name, model, data, ...)")
    env = os.environ if env is None else env
    try:
        sweep = Sweep.model_validate(expand_env(tree, env))
    except ValidationError as err:
        raise UserError(f"{source} is invalid:\n{format_validation_error(err)}") from None
    sweep._kept_variables = _kept_variables(tree, env)
    return sweep


def load_sweep(
    path: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
) -> Sweep:
    """Reads, overrides, expands (from `env`, default the process environment) and validates
    a sweep file."""
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
    return parse_sweep(tree, source=source, env=env)


def sweep_to_yaml(sweep: Sweep) -> str:
    """The resolved sweep (defaults filled, SAVED_VARIABLES expanded), as saved in the run dir:
    a string that used another variable is saved as written (unless it was changed since), and
    a literal `${` is written `$${`, so that loading the file gives the same sweep back."""
    tree = sweep.model_dump(mode="json", exclude={"space"})
    if sweep.costs:  # written as the user wrote it: metric: [accuracy, latency_ms]
        tree["metric"] = [name for name, _ in sweep.objectives]
        tree["mode"] = [mode for _, mode in sweep.objectives]
    tree["space"] = {name: _dimension_to_yaml(dim) for name, dim in sweep.space.items()}
    tree = _escape_variables(tree)
    for path, (template, expanded) in sweep._kept_variables.items():
        if _value_at(tree, path) == expanded.replace("${", "$${"):
            tree = _replace(tree, path, template)
    return yaml.safe_dump(tree, sort_keys=False)


def _value_at(tree: Any, path: Path_) -> Any:
    for part in path:
        try:
            tree = tree[part]
        except (KeyError, IndexError, TypeError):
            return None
    return tree


def _escape_variables(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _escape_variables(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_escape_variables(item) for item in value]
    return value.replace("${", "$${") if isinstance(value, str) else value


def _dimension_to_yaml(dim: Any) -> Any:
    if dim.kind == "constant":
        return dim.args[0]
    return {dim.kind: list(dim.args)}


def load_run_sweep(run: StorageDir) -> Sweep:
    """The resolved sweep file that a run dir was started with."""
    run.pull(SWEEP_COPY)
    path = run.local / SWEEP_COPY
    if not path.is_file():
        raise UserError(f"{run} is not a run dir of hpo (it has no {SWEEP_COPY})")
    return load_sweep(path)
