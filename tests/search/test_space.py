"""Search-space translation: every distribution reaches Tune, and every searcher can sample it."""

from __future__ import annotations

import math

import pytest
from ray import tune
from ray.tune.search.sample import Categorical, Float, Integer

from hpo.search.algorithms import ALGORITHMS, SearchSettings
from hpo.search.space import Dimension, parse_dimension, to_tune_space

SPACE = {
    "learning_rate": parse_dimension({"loguniform": [1e-5, 3e-4]}),
    "weight_decay": parse_dimension({"uniform": [0.0, 0.1]}),
    "warmup_ratio": parse_dimension({"quniform": [0.0, 0.2, 0.05]}),
    "seed": parse_dimension({"randint": [0, 3]}),
    "batch_size": parse_dimension({"choice": [16, 32]}),
    "lr_schedule": parse_dimension("linear"),
}


def test_parse_dimension_forms() -> None:
    assert parse_dimension(0.1) == Dimension("constant", (0.1,))
    assert parse_dimension({"grid": [1, 2]}) == Dimension("grid", (1, 2))
    with pytest.raises(ValueError, match="choice takes a non-empty list"):
        parse_dimension({"choice": []})
    with pytest.raises(ValueError, match=r"quniform takes a list \[low, high, step\]"):
        parse_dimension({"quniform": [0, 1]})
    with pytest.raises(ValueError, match="randint bounds must be whole numbers"):
        parse_dimension({"randint": [0, 1.5]})
    with pytest.raises(ValueError, match="expected one of"):
        parse_dimension({"uniform": [0, 1], "choice": [1]})


def test_translation_to_tune_domains() -> None:
    space = to_tune_space(SPACE)
    lr = space["learning_rate"]
    assert isinstance(lr, Float) and (lr.lower, lr.upper) == (1e-5, 3e-4)
    assert type(lr.get_sampler()).__name__ == "_LogUniform"
    assert isinstance(space["weight_decay"], Float)
    assert space["warmup_ratio"].get_sampler().q == 0.05
    seed = space["seed"]
    assert isinstance(seed, Integer) and (seed.lower, seed.upper) == (0, 4)  # inclusive 3
    assert isinstance(space["batch_size"], Categorical)
    assert space["batch_size"].categories == [16, 32]
    assert space["lr_schedule"] == "linear"


def test_grid_algorithm_runs_choices_as_grids() -> None:
    space = to_tune_space(
        {
            "batch_size": parse_dimension({"choice": [16, 32]}),
            "learning_rate": parse_dimension({"grid": [1e-4, 2e-4]}),
        },
        grid_choices=True,
    )
    assert space == {
        "batch_size": tune.grid_search([16, 32]),
        "learning_rate": tune.grid_search([1e-4, 2e-4]),
    }


@pytest.mark.parametrize("name", ["random", "tpe", "hyperopt", "gp"])
def test_every_searcher_samples_the_translated_space(name: str) -> None:
    """Each searcher converts the Tune space itself and suggests valid configurations (Tune
    adds the constants to what they suggest)."""
    algorithm = ALGORITHMS[name]
    searcher = algorithm.build(SearchSettings(seed=0, n_startup_trials=2, max_concurrent=1))
    space = to_tune_space(SPACE, grid_choices=algorithm.choices_as_grid)
    if name == "random":
        from ray.tune.search import BasicVariantGenerator

        assert isinstance(searcher, BasicVariantGenerator)
        return
    assert searcher.set_search_properties("accuracy", "max", space)
    for i in range(3):
        config = searcher.suggest(f"t{i}")
        assert 1e-5 <= config["learning_rate"] <= 3e-4
        assert 0.0 <= config["weight_decay"] <= 0.1
        assert math.isclose(config["warmup_ratio"] / 0.05, round(config["warmup_ratio"] / 0.05))
        assert config["seed"] in (0, 1, 2, 3)
        assert config["batch_size"] in (16, 32)
        searcher.on_trial_complete(f"t{i}", {"accuracy": 0.5 + i / 10, "training_iteration": 1})
