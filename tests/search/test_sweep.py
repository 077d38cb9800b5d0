"""Sweep files: the examples validate, every kind of mistake gets a message naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from search.sweep import apply_override, expand_env, load_sweep, parse_sweep, sweep_to_yaml
from tests.conftest import REPO
from tests.helpers import tiny_sweep, write_yaml
from trainables.errors import UserError

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def minimal(**changes) -> dict:
    tree = tiny_sweep("some/model", Path("/tmp/runs"))
    tree.update(changes)
    return tree


def error_of(tree: dict) -> str:
    with pytest.raises(UserError) as caught:
        parse_sweep(tree)
    return str(caught.value)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_validate(path: Path, data_dir: Path) -> None:
    sweep = load_sweep(path)
    assert sweep.name == path.stem
    assert sweep.num_trials() >= 1


def test_examples_cover_the_documented_ones() -> None:
    assert {"quickstart.yaml", "sst2.yaml", "mrpc.yaml", "trec.yaml"} <= {p.name for p in EXAMPLES}


def test_defaults_are_filled() -> None:
    sweep = parse_sweep(minimal(search={"algorithm": "tpe"}, scheduler={"name": "asha"}))
    assert sweep.mode == "min"  # metric: loss
    assert sweep.search.trials_requested() == 8
    assert sweep.search.startup_trials() == 2
    assert sweep.scheduler.max_epochs == 3
    assert sweep.train.workers == 1


def test_mode_follows_the_metric() -> None:
    assert parse_sweep(minimal(metric="accuracy")).mode == "max"
    assert "mode: accuracy should be maximised" in error_of(minimal(metric="accuracy", mode="min"))


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"search": {"algorithm": "bayes"}}, "search.algorithm: Input should be 'grid', 'random', "
         "'tpe', 'hyperopt' or 'gp'; got 'bayes'"),
        ({"metric": "auc"}, "metric: Input should be"),
        ({"scheduler": {"name": "pbt"}}, "scheduler: Input tag 'pbt' found using 'name' does not"),
        ({"scheduler": {"name": "asha", "brackts": 2}}, "scheduler.brackts: unknown key"),
        ({"scheduler": {"name": "fifo", "brackets": 2}}, "scheduler.brackets: unknown key"),
        ({"search": {"num_samples": 0}}, "search.num_samples: Input should be greater than or "
         "equal to 1"),
        ({"train": {"workers": "two"}}, "train.workers: Input should be a valid integer"),
        ({"trian": {}}, "trian: unknown key"),
        ({"name": "my sweep"}, "name: String should match pattern"),
        ({"space": {"learing_rate": {"uniform": [0, 1]}}}, "space.learing_rate: unknown "
         "hyperparameter; searchable ones are learning_rate, batch_size"),
        ({"space": {"learning_rate": {"loguniform": [0, 1]}}}, "loguniform needs low > 0"),
        ({"space": {"learning_rate": {"uniform": [1, 0]}}}, "uniform needs low < high"),
        ({"space": {"learning_rate": {"normal": [0, 1]}}}, "expected one of {uniform: ...}"),
        ({"space": {"batch_size": {"uniform": [8, 64]}}}, "space.batch_size: takes whole numbers;"
         " use randint, choice or grid, not uniform"),
        ({"space": {"batch_size": {"choice": [16, "big"]}}}, "space.batch_size: 'big' is not "
         "valid"),
        ({"space": {"warmup_ratio": {"uniform": [0, 2]}}}, "space.warmup_ratio: 2 is not valid: "
         "Input should be less than or equal to 1"),
        ({"space": {"learning_rate": 1e-4}}, "space: nothing to search"),
        ({"space": {"learning_rate": {"grid": [1e-4, 2e-4]}}, "search": {"algorithm": "tpe"}},
         "space.learning_rate: grid values need search.algorithm grid or random; with tpe, "
         "write {choice: [...]}"),
        ({"space": {"learning_rate": {"uniform": [1e-5, 1e-4]}}, "search": {"algorithm": "grid"}},
         "space.learning_rate: search.algorithm grid needs grid or choice values, not uniform"),
    ],
)
def test_bad_sweeps_name_the_key(changes: dict, expected: str) -> None:
    assert expected in error_of(minimal(**changes))


def test_missing_sections_are_named() -> None:
    tree = minimal()
    del tree["model"], tree["data"]["train"]
    message = error_of(tree)
    assert "model: required key is missing" in message
    assert "data.train: required key is missing" in message


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_sweep(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(UserError, match="is not valid YAML"):
        load_sweep(bad)
    bad.write_text("- a list\n")
    with pytest.raises(UserError, match="expected a mapping of keys"):
        load_sweep(bad)


def test_env_expansion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPO_DATA", "/data")
    monkeypatch.delenv("UNSET_VAR", raising=False)
    tree = {"a": "${HPO_DATA}/x.csv", "b": ["${UNSET_VAR:-fallback}"], "c": 3}
    assert expand_env(tree) == {"a": "/data/x.csv", "b": ["fallback"], "c": 3}
    monkeypatch.delenv("HPO_DATA")
    assert expand_env({"a": "${HPO_DATA}"}) == {"a": "../shared/data"}
    with pytest.raises(UserError, match=r"data.train: environment variable UNSET_VAR is not set"):
        expand_env({"data": {"train": "${UNSET_VAR}/x.csv"}})


def test_overrides(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "s.yaml", minimal())
    sweep = load_sweep(
        path,
        ["search.num_samples=5", "space.batch_size={choice: [8, 16]}", "train.use_gpu=false"],
    )
    assert sweep.search.num_samples == 5
    assert sweep.space["batch_size"].args == (8, 16)
    assert sweep.train.use_gpu is False
    with pytest.raises(UserError, match="write key.path=value"):
        apply_override({}, "search.num_samples")
    with pytest.raises(UserError, match="search.algorithm is a value, not a section"):
        apply_override({"search": {"algorithm": "tpe"}}, "search.algorithm.x=1")
    with pytest.raises(UserError, match="search.num_sample: unknown key"):
        load_sweep(path, ["search.num_sample=5"])


def test_resolved_copy_round_trips(tmp_path: Path) -> None:
    sweep = parse_sweep(minimal(search={"algorithm": "grid"}, space={
        "learning_rate": {"grid": [1e-4, 2e-4]}, "batch_size": {"choice": [16, 32]},
        "weight_decay": 0.01,
    }))
    again = parse_sweep(yaml.safe_load(sweep_to_yaml(sweep)))
    assert again == sweep
    assert again.num_trials() == 4  # grid: 2 x 2 combinations, once each


def test_grid_counts_repeats_and_random_counts_grid_dimensions() -> None:
    grid = parse_sweep(minimal(search={"algorithm": "grid", "num_samples": 2}, space={
        "learning_rate": {"grid": [1e-4, 2e-4, 3e-4]}}))
    assert grid.num_trials() == 6
    random = parse_sweep(minimal(search={"algorithm": "random", "num_samples": 3}, space={
        "learning_rate": {"grid": [1e-4, 2e-4]}, "batch_size": {"choice": [16, 32]}}))
    assert random.num_trials() == 6


def test_schema_describes_the_sections() -> None:
    from search.sweep import Sweep

    schema = Sweep.model_json_schema()
    assert {"name", "model", "data", "search", "scheduler", "space", "train", "storage"} <= set(
        schema["properties"]
    )
    assert schema["properties"]["search"]["$ref"].endswith("SearchConfig")
    algorithms = schema["$defs"]["SearchConfig"]["properties"]["algorithm"]["enum"]
    assert algorithms == ["grid", "random", "tpe", "hyperopt", "gp"]
    space = schema["properties"]["space"]["additionalProperties"]
    assert {"loguniform"} in [set(option.get("required", [])) for option in space["anyOf"]]
