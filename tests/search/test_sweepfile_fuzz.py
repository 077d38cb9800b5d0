"""Broken sweep files, generated (hypothesis): wrong types, unknown keys, empty or inverted
ranges, bad distributions, huge numbers, unicode, deep nesting; and missing files, columns
and models. Each ends with exit code 2 and a message, never a traceback."""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hpo.cli.main import main
from hpo.core.errors import UserError
from hpo.search.prepare import prepare
from hpo.search.space import KINDS
from hpo.search.sweepfile import load_sweep
from tests.helpers import sweep_tree

KEYS = [
    "name",
    "model",
    "metric",
    "mode",
    "storage",
    "search",
    "search.algorithm",
    "search.num_samples",
    "search.max_concurrent",
    "search.seed",
    "search.time_budget_s",
    "search.max_failures",
    "scheduler",
    "scheduler.name",
    "scheduler.max_epochs",
    "scheduler.grace_period",
    "train",
    "train.workers",
    "train.max_length",
    "train.evals_per_epoch",
    "train.launcher",
    "data",
    "data.train",
    "data.text",
    "data.label_names",
    "data.max_train_samples",
    "space",
    "space.learning_rate",
    "space.batch_size",
    "space.seed",
    "serve",
    "serve.port",
    "serve.max_batch",
    "compare.budget",
    "compare.seeds",
    "unknown_key",
    "search.unknown",
    "space.not_a_knob",
]
SECTIONS = "|".join(dict.fromkeys(key.split(".")[0] for key in KEYS))
NAMES_A_KEY = re.compile(rf"^({SECTIONS})\b[^:]*: ")
"""A problem's line: the key it is about (a path in one of the sections fuzzed), then what."""
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
NUMBER = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30), st.floats(allow_infinity=True)
)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"x": [value]}
    return value


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    NUMBER,
    TEXT,
    st.lists(st.one_of(NUMBER, TEXT), max_size=4),
    st.dictionaries(TEXT, st.one_of(NUMBER, TEXT), max_size=3),
    st.builds(
        lambda kind, args: {kind: args},
        st.sampled_from(KINDS),
        st.lists(st.one_of(NUMBER, TEXT), max_size=4),
    ),
    st.integers(min_value=1, max_value=200).map(nested),
)


def _first_problem(message: str) -> str:
    """The first problem of an error message, after its "sweep file ... is invalid:" line
    (a problem may go on over more lines where a generated value holds a newline)."""
    if message.startswith("sweep file ") and "\n" in message:
        return message.split("\n", 1)[1]
    return message


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    *sections, last = path.split(".")
    node = tree
    for name in sections:
        child = node.get(name)
        node[name] = child if isinstance(child, dict) else {}
        node = node[name]
    node[last] = value


def hpo_exit(*args: str) -> tuple[int, str]:
    """`hpo ARGS` in this process: its exit code and what it printed to stderr."""
    err = io.StringIO()
    with mock.patch.object(sys, "argv", ["hpo", *args]), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as end:
            return int(end.code or 0), err.getvalue()
    return 0, err.getvalue()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(st.tuples(st.sampled_from(KEYS), VALUES), min_size=1, max_size=3))
@example(mutations=[("metric", [])])  # an empty list of metrics: "not enough values to unpack"
def test_a_broken_sweep_file_is_one_clear_error(
    mutations: list[tuple[str, Any]], tmp_path_factory
) -> None:
    tree = sweep_tree()
    for path, value in mutations:
        set_path(tree, path, value)
    path = tmp_path_factory.mktemp("fuzz") / "sweep.yaml"
    path.write_text(yaml.safe_dump(tree, allow_unicode=True))
    code, stderr = hpo_exit("validate", str(path))
    assert code in (0, 2), stderr
    assert "Traceback" not in stderr
    if code == 2:  # "error: sweep file ... is invalid:", then a line per problem, key first
        assert NAMES_A_KEY.match(_first_problem(stderr[stderr.index("error: ") + 7 :])), stderr


DATA_MUTATIONS = st.one_of(
    st.tuples(
        st.just("data.train"),
        st.one_of(TEXT, st.just("/nowhere/train.csv"), st.just("${HPO_DATA}/mrpc/train.csv")),
    ),
    st.tuples(st.just("data.text"), TEXT),
    st.tuples(st.just("data.label"), TEXT),
    st.tuples(st.just("data.text_pair"), TEXT),
    st.tuples(st.just("model"), st.one_of(TEXT, st.just("/no/such/model/folder"))),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(mutation=DATA_MUTATIONS)
@example(mutation=("model", "~0"))  # `~user` of no user: pathlib raised RuntimeError
def test_missing_files_columns_and_models_are_one_clear_error(
    mutation: tuple[str, Any], tiny_model: str, data_dir: Path, tmp_path_factory
) -> None:
    tree = sweep_tree(model=tiny_model)
    set_path(tree, *mutation)
    path = tmp_path_factory.mktemp("fuzz") / "sweep.yaml"
    path.write_text(yaml.safe_dump(tree, allow_unicode=True))
    try:
        prepare(load_sweep(path))
    except UserError as err:
        section = mutation[0].split(".")[0]  # data or model
        assert _first_problem(str(err)).startswith(section), str(err)  # names the key
