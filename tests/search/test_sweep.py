"""The sweep file's model: defaults, and every kind of mistake gets a message naming its key."""

from __future__ import annotations

import pytest

from hpo.core.errors import UserError
from hpo.search.algorithms import ALGORITHMS
from hpo.search.schedulers import SCHEDULERS
from hpo.search.sweep import Sweep
from hpo.search.sweepfile import parse_sweep
from tests.helpers import sweep_tree


def error_of(tree: dict) -> str:
    with pytest.raises(UserError) as caught:
        parse_sweep(tree)
    return str(caught.value)


def test_defaults_are_filled() -> None:
    sweep = parse_sweep(sweep_tree(search={"algorithm": "tpe"}, scheduler={"name": "asha"}))
    assert sweep.mode == "min"  # metric: loss
    assert sweep.search.trials_requested() == 8
    assert sweep.search.startup_trials() == 2
    assert sweep.scheduler.max_epochs == 3
    assert sweep.train.workers == 1


def test_mode_follows_the_metric() -> None:
    assert parse_sweep(sweep_tree(metric="accuracy")).mode == "max"
    assert "mode: accuracy should be maximised" in error_of(
        sweep_tree(metric="accuracy", mode="min")
    )


@pytest.mark.parametrize(
    "changes, expected",
    [
        (
            {"search": {"algorithm": "bayes"}},
            "search.algorithm: Input should be 'grid', 'random', "
            "'tpe', 'hyperopt' or 'gp'; got 'bayes'",
        ),
        ({"metric": "auc"}, "metric: Input should be"),
        (
            {"scheduler": {"name": "bohb"}},
            "scheduler: Input tag 'bohb' found using 'name' does not",
        ),
        (
            {"scheduler": {"name": "pbt", "max_epochs": 2}, "search": {"algorithm": "tpe"}},
            "scheduler pbt: search.algorithm tpe cannot run next to it",
        ),
        (
            {
                "scheduler": {"name": "pbt", "max_epochs": 2},
                "space": {"batch_size": {"choice": [8, 16]}},
            },
            "scheduler.mutate: nothing to perturb; search one of learning_rate",
        ),
        (
            {"scheduler": {"name": "pbt", "max_epochs": 2, "mutate": ["batch_size"]}},
            "scheduler.mutate: pbt cannot change batch_size in a trial that goes on from a "
            "checkpoint",
        ),
        (
            {
                "scheduler": {"name": "pb2", "max_epochs": 2, "mutate": ["lr_schedule"]},
                "space": {
                    "learning_rate": {"loguniform": [1e-5, 1e-3]},
                    "lr_schedule": {"choice": ["linear", "cosine"]},
                },
            },
            "scheduler.mutate: pb2 perturbs loguniform, quniform, randint, uniform values, not "
            "space.lr_schedule's choice; use pbt, or search a range",
        ),
        (
            {"scheduler": {"name": "pb2", "max_epochs": 2}, "search": {"algorithm": "tpe"}},
            "scheduler pb2: search.algorithm tpe cannot run next to it",
        ),
        (
            {"scheduler": {"name": "pbt", "max_epochs": 2, "mutate": ["weight_decay"]}},
            "scheduler.mutate: weight_decay must be searched in space",
        ),
        (
            {"scheduler": {"name": "pbt", "max_epochs": 2, "perturbation_interval": 0.3}},
            "scheduler.perturbation_interval: 0.3 epochs must be a whole number of evaluations",
        ),
        (
            {
                "scheduler": {"name": "pbt", "max_epochs": 2},
                "search": {"algorithm": "random", "num_samples": 4},
            },
            "scheduler pbt: the population trains side by side",
        ),
        (
            {"scheduler": {"name": "pbt", "max_epochs": 2}, "train": {"workers": 2}},
            "scheduler pbt: a trial takes over another's checkpoint in its own process",
        ),
        ({"scheduler": {"name": "asha", "brackts": 2}}, "scheduler.brackts: unknown key"),
        ({"scheduler": {"name": "fifo", "brackets": 2}}, "scheduler.brackets: unknown key"),
        (
            {"search": {"num_samples": 0}},
            "search.num_samples: Input should be greater than or equal to 1",
        ),
        ({"train": {"workers": "two"}}, "train.workers: Input should be a valid integer"),
        ({"trian": {}}, "trian: unknown key"),
        ({"name": "my sweep"}, "name: String should match pattern"),
        (
            {"space": {"learing_rate": {"uniform": [0, 1]}}},
            "space.learing_rate: unknown "
            "hyperparameter; searchable ones are learning_rate, batch_size",
        ),
        ({"space": {"learning_rate": {"loguniform": [0, 1]}}}, "loguniform needs low > 0"),
        ({"space": {"learning_rate": {"uniform": [1, 0]}}}, "uniform needs low < high"),
        ({"space": {"learning_rate": {"normal": [0, 1]}}}, "expected one of {uniform: ...}"),
        (
            {"space": {"batch_size": {"uniform": [8, 64]}}},
            "space.batch_size: takes whole numbers; use randint, choice or grid, not uniform",
        ),
        (
            {"space": {"batch_size": {"choice": [16, "big"]}}},
            "space.batch_size: 'big' is not valid",
        ),
        (
            {"space": {"warmup_ratio": {"uniform": [0, 2]}}},
            "space.warmup_ratio: 2 is not valid: Input should be less than or equal to 1",
        ),
        ({"space": {"learning_rate": 1e-4}}, "space: nothing to search"),
        (
            {"space": {"learning_rate": {"grid": [1e-4, 2e-4]}}, "search": {"algorithm": "tpe"}},
            "space.learning_rate: grid values need search.algorithm grid or random; with tpe, "
            "write {choice: [...]}",
        ),
        (
            {
                "space": {"learning_rate": {"uniform": [1e-5, 1e-4]}},
                "search": {"algorithm": "grid"},
            },
            "space.learning_rate: search.algorithm grid needs grid or choice values, not uniform",
        ),
        (
            {"space": {"learning_rate": 1e-4, "lora_r": {"choice": [4, 8]}}},
            "space.lora_r: only lora trials use it, and no trial here is one (strategy: full)",
        ),
        (
            {
                "space": {"strategy": {"choice": ["full", "lora"]}, "batch_size": 16},
                "train": {"strategy": "bitfit"},
            },
            "train.strategy and space.strategy: set the strategy in one place",
        ),
        (
            {
                "space": {"strategy": {"choice": ["full", "lora"]}, "lora_r": {"choice": [4, 8]}},
                "search": {"algorithm": "hyperopt"},
            },
            "search.algorithm: hyperopt cannot search keys that only some strategies use "
            "(lora_r); use random, tpe, gp, or fix those keys to one value",
        ),
        (
            {
                "space": {"strategy": {"grid": ["full", "lora"]}, "lora_r": {"choice": [4, 8]}},
                "search": {"algorithm": "random"},
            },
            "space.strategy: a space with strategy-specific keys is searched define-by-run",
        ),
        (
            {"space": {"strategy": {"choice": ["full", "adapters"]}}},
            "space.strategy: 'adapters' is not valid",
        ),
        (
            {"space": {"learning_rate": 1e-4, "lora_targets": {"choice": ["query;value"]}}},
            "space.lora_targets: 'query;value' is not valid: String should match pattern",
        ),
        ({"metric": ["accuracy", "auc"]}, "metric: Input should be one of accuracy"),
        (
            {"metric": ["latency_ms", "accuracy"]},
            "metric: list a validation metric (accuracy, f1, f1_macro, mcc, loss) first",
        ),
        ({"metric": ["accuracy"]}, "then one or more of latency_ms, params, size_mb"),
        ({"metric": ["accuracy", "params", "params"]}, "each once; not a repeat"),
        (
            {"metric": ["accuracy", "latency_ms"], "mode": ["max", "max"]},
            "mode: latency_ms is a cost, minimised; write min for it",
        ),
        ({"metric": ["accuracy", "latency_ms"], "mode": ["max"]}, "mode: give one per metric"),
        ({"mode": ["max", "min"]}, "mode: a list of modes goes with a list of metrics"),
        (
            {"metric": ["accuracy", "latency_ms"], "search": {"algorithm": "hyperopt"}},
            "search.algorithm: hyperopt optimises one metric; with several use tpe, random, grid",
        ),
        (
            {"metric": ["accuracy", "latency_ms"], "scheduler": {"name": "asha"}},
            "scheduler: asha stops trials on accuracy alone",
        ),
        (
            {"metric": ["accuracy", "size_mb"], "serve": {"select": {"max_latency_ms": 20}}},
            "serve.select: picks by latency; add it to the objectives: metric: [accuracy, "
            "latency_ms]",
        ),
        (
            {"metric": ["accuracy", "latency_ms"], "serve": {"select": {}}},
            "serve.select: give one of fastest_within and max_latency_ms",
        ),
    ],
)
def test_bad_sweeps_name_the_key(changes: dict, expected: str) -> None:
    assert expected in error_of(sweep_tree(**changes))


def test_missing_sections_are_named() -> None:
    tree = sweep_tree()
    del tree["model"], tree["data"]["train"]
    message = error_of(tree)
    assert "model: required key is missing" in message
    assert "data.train: required key is missing" in message


def test_grid_counts_repeats_and_random_counts_grid_dimensions() -> None:
    grid = parse_sweep(
        sweep_tree(
            search={"algorithm": "grid", "num_samples": 2},
            space={"learning_rate": {"grid": [1e-4, 2e-4, 3e-4]}},
        )
    )
    assert grid.num_trials() == 6
    random = parse_sweep(
        sweep_tree(
            search={"algorithm": "random", "num_samples": 3},
            space={"learning_rate": {"grid": [1e-4, 2e-4]}, "batch_size": {"choice": [16, 32]}},
        )
    )
    assert random.num_trials() == 6


def test_schema_describes_the_sections() -> None:
    schema = Sweep.model_json_schema()
    assert {"name", "model", "data", "search", "scheduler", "space", "train", "storage"} <= set(
        schema["properties"]
    )
    assert schema["properties"]["search"]["$ref"].endswith("SearchConfig")
    algorithms = schema["$defs"]["SearchConfig"]["properties"]["algorithm"]["enum"]
    assert algorithms == ["grid", "random", "tpe", "hyperopt", "gp"]
    space = schema["properties"]["space"]["additionalProperties"]
    assert {"loguniform"} in [set(option.get("required", [])) for option in space["anyOf"]]


def test_the_registries_are_the_only_list_of_names() -> None:
    """The schema's names and descriptions come from ALGORITHMS and SCHEDULERS."""
    schema = Sweep.model_json_schema()
    search = schema["$defs"]["SearchConfig"]["properties"]["algorithm"]
    assert search["enum"] == list(ALGORITHMS)
    assert all(algorithm.summary in search["description"] for algorithm in ALGORITHMS.values())
    scheduler = schema["properties"]["scheduler"]
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in scheduler["oneOf"]} == {
        cls.__name__ for cls in SCHEDULERS.values()
    }
    assert all(cls.summary in scheduler["description"] for cls in SCHEDULERS.values())


def test_a_strategy_fixed_in_train_may_have_its_keys_searched() -> None:
    sweep = parse_sweep(
        sweep_tree(train={"strategy": "lora"}, space={"lora_r": {"choice": [4, 8]}})
    )
    assert sweep.train.strategy == "lora" and sweep.space["lora_r"].is_searched


def test_a_list_of_metrics_is_the_metric_and_the_costs() -> None:
    sweep = parse_sweep(sweep_tree(metric=["accuracy", "latency_ms", "params"]))
    assert (sweep.metric, sweep.mode, sweep.costs) == ("accuracy", "max", ("latency_ms", "params"))
    assert sweep.objectives == [("accuracy", "max"), ("latency_ms", "min"), ("params", "min")]
    assert sweep.searcher_owns_space  # random through Optuna, define-by-run
    single = parse_sweep(sweep_tree(metric="accuracy"))
    assert single.costs == () and single.objectives == [("accuracy", "max")]
