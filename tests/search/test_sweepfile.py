"""Reading sweep files: the examples load, YAML and file errors, `${VAR}` expansion (from an
explicit environment too), `--set` overrides, and the resolved copy a run dir keeps."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hpo.core.errors import UserError
from hpo.search.sweepfile import apply_override, expand_env, load_sweep, parse_sweep, sweep_to_yaml
from tests.conftest import REPO
from tests.helpers import sweep_tree, write_yaml

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_validate(path: Path, data_dir: Path) -> None:
    sweep = load_sweep(path)
    assert sweep.name == path.stem
    assert sweep.num_trials() >= 1


def test_examples_cover_the_documented_ones() -> None:
    assert {"quickstart.yaml", "sst2.yaml", "mrpc.yaml", "trec.yaml"} <= {p.name for p in EXAMPLES}


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


def test_expansion_reads_an_explicit_environment_and_keeps_escaped_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HPO_DATA", "/from/the/process")
    tree = {"a": "${HPO_DATA}/x.csv", "b": "$${HPO_DATA} and $${NOT_SET}", "c": "$$5"}
    assert expand_env(tree, {"HPO_DATA": "/given"}) == {
        "a": "/given/x.csv",
        "b": "${HPO_DATA} and ${NOT_SET}",
        "c": "$$5",
    }
    path = write_yaml(tmp_path / "s.yaml", sweep_tree())
    given = load_sweep(path, env={"HPO_DATA": "/given"})
    assert given.data.train == "/given/sst2/train.csv"


def test_overrides(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "s.yaml", sweep_tree())
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
    sweep = parse_sweep(
        sweep_tree(
            search={"algorithm": "grid"},
            space={
                "learning_rate": {"grid": [1e-4, 2e-4]},
                "batch_size": {"choice": [16, 32]},
                "weight_decay": 0.01,
            },
        )
    )
    again = parse_sweep(yaml.safe_load(sweep_to_yaml(sweep)))
    assert again == sweep
    assert again.num_trials() == 4  # grid: 2 x 2 combinations, once each


def test_a_list_of_metrics_is_saved_as_written() -> None:
    sweep = parse_sweep(sweep_tree(metric=["accuracy", "latency_ms"]))
    saved = yaml.safe_load(sweep_to_yaml(sweep))
    assert (saved["metric"], saved["mode"]) == (["accuracy", "latency_ms"], ["max", "min"])
    again = parse_sweep(saved)
    assert again.objectives == sweep.objectives


def test_a_literal_variable_survives_the_resolved_copy() -> None:
    sweep = parse_sweep(sweep_tree(storage="/tmp/$${NOT_SET}/runs"))
    assert sweep.storage == "/tmp/${NOT_SET}/runs"
    assert parse_sweep(yaml.safe_load(sweep_to_yaml(sweep))) == sweep


def test_saved_copies_keep_other_variables_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only SAVED_VARIABLES' values land in a run dir's sweep.yaml (or a job's, a ConfigMap's):
    a secret in the environment stays `${NAME}` there and is expanded again on loading."""
    env = {"HPO_DATA": "/data", "BUCKET_URI": "s3://user:s3cret@bucket", "TAG": "v1"}
    tree = sweep_tree(storage="${BUCKET_URI}/runs", name="sweep-${TAG}")
    tree["data"]["train"] = "${HPO_DATA}/sst2/train.csv"
    sweep = parse_sweep(tree, env=env)
    assert sweep.storage == "s3://user:s3cret@bucket/runs"
    saved = sweep_to_yaml(sweep)
    assert "s3cret" not in saved and "v1" not in saved
    assert "${BUCKET_URI}/runs" in saved and "sweep-${TAG}" in saved
    assert "/data/sst2/train.csv" in saved
    assert parse_sweep(yaml.safe_load(saved), env=env) == sweep
    moved = sweep.model_copy(update={"storage": "/elsewhere"})  # changed since: saved as is
    assert "storage: /elsewhere" in sweep_to_yaml(moved)
    with pytest.raises(UserError, match="storage: environment variable BUCKET_URI is not set"):
        parse_sweep(yaml.safe_load(saved), env={"TAG": "v1"})


def test_switching_the_scheduler_drops_the_keys_the_new_one_does_not_take(
    tmp_path: Path,
) -> None:
    from hpo.core.config import SweepFileWarning

    tree = sweep_tree(
        scheduler={"name": "asha", "max_epochs": 2, "grace_period": 0.5, "reduction_factor": 2}
    )
    path = write_yaml(tmp_path / "s.yaml", tree)
    with pytest.warns(
        SweepFileWarning,
        match=r"dropped scheduler.grace_period, "
        r"scheduler.reduction_factor, which fifo does not take",
    ):
        sweep = load_sweep(path, ["scheduler.name=fifo"])
    assert sweep.scheduler.name == "fifo" and sweep.scheduler.max_epochs == 2
    with pytest.warns(SweepFileWarning, match=r"dropped scheduler.reduction_factor, which"):
        median = load_sweep(path, ["scheduler.name=median"])  # keeps the grace period
    assert median.scheduler.grace_period == 0.5
