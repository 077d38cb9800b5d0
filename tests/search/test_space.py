"""Search-space translation: every distribution reaches Tune, and every searcher can sample it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from ray import tune
from ray.tune.search.sample import Categorical, Float, Integer

from hpo.search.algorithms import ALGORITHMS, SearchSettings
from hpo.search.space import Dimension, PastTrial, parse_dimension, past_trials, to_tune_space

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


CONDITIONAL_SPACE = {
    "learning_rate": Dimension("loguniform", (1e-5, 3e-4)),
    "strategy": Dimension("choice", ("full", "bitfit", "lora")),
    "lora_r": Dimension("choice", (4, 8, 16)),
    "lora_alpha": Dimension("uniform", (8.0, 32.0)),
    "lora_dropout": Dimension("constant", (0.0,)),
    "batch_size": Dimension("constant", (16,)),
}


@pytest.mark.parametrize("name", ["random", "tpe", "gp"])
def test_conditional_keys_are_drawn_only_for_their_strategy(name: str) -> None:
    """Define-by-run: a LoRA key exists in LoRA trials only, also once the sampler models the
    past trials; the constants come with every trial, the LoRA ones with LoRA trials."""
    settings = SearchSettings(seed=0, n_startup_trials=2, max_concurrent=1, space=CONDITIONAL_SPACE)
    searcher = ALGORITHMS[name].build(settings)
    assert not searcher.set_search_properties("accuracy", "max", {})  # it owns the space
    strategies = set()
    for i in range(10):
        config = searcher.suggest(f"t{i}")
        strategies.add(config["strategy"])
        lora_keys = {"lora_r", "lora_alpha", "lora_dropout"} & set(config)
        assert lora_keys == (
            {"lora_r", "lora_alpha", "lora_dropout"} if config["strategy"] == "lora" else set()
        )
        assert config["batch_size"] == 16 and 1e-5 <= config["learning_rate"] <= 3e-4
        score = 0.9 if config["strategy"] == "lora" else 0.5
        searcher.on_trial_complete(f"t{i}", {"accuracy": score, "training_iteration": 1})
    assert "lora" in strategies and len(strategies) > 1


@pytest.mark.parametrize("name", ["tpe", "gp"])
def test_a_searcher_given_past_trials_models_them_from_its_first_suggestion(name: str) -> None:
    """`hpo extend` and `warm_start`: the past trials are in the searcher's history before it
    suggests anything, so its first suggestions follow them (here: learning rates near 1e-3
    scored best), where a fresh searcher starts with random ones."""
    space = {
        "learning_rate": Dimension("loguniform", (1e-5, 1e-1)),
        "batch_size": Dimension("constant", (16,)),
    }

    def score(lr: float) -> float:
        return 0.9 - 0.1 * abs(math.log10(lr) + 3)

    prior = [PastTrial({"learning_rate": lr}, score(lr)) for lr in np.geomspace(1e-5, 1e-1, 12)]

    def distances(prior: list[PastTrial]) -> list[float]:
        settings = SearchSettings(
            seed=0, n_startup_trials=4, max_concurrent=1, space=space, prior=prior
        )
        searcher = ALGORITHMS[name].build(settings)
        searcher.set_search_properties("accuracy", "max", to_tune_space(space))
        found = []
        for i in range(4):
            lr = searcher.suggest(f"t{i}")["learning_rate"]
            found.append(abs(math.log10(lr) + 3))
            searcher.on_trial_complete(f"t{i}", {"accuracy": score(lr), "training_iteration": 1})
        return found

    warm, cold = distances(prior), distances([])
    assert max(warm) < 1  # all four within a decade of 1e-3 (the space spans four)
    assert sum(warm) < sum(cold) / 2


def test_hyperopt_given_past_trials_it_did_not_run_draws_near_their_best() -> None:
    """HyperOpt's TPE explores more than Optuna's, so it gets more past trials and draws: twenty
    whose accuracy peaks at a learning rate of 1e-4 and favours "cosine". Its history holds
    them as finished, and its next draws, past its random start already, mostly fall near the
    peak, where a fresh one draws its random start."""
    space = {
        "learning_rate": Dimension("loguniform", (1e-6, 1e-2)),
        "lr_schedule": Dimension("choice", ("linear", "cosine")),
    }
    rates = np.geomspace(1e-6, 1e-2, 20)
    prior = [
        PastTrial(
            {"learning_rate": rate, "lr_schedule": ("cosine", "linear")[i % 2]},
            0.9 - 0.1 * abs(math.log10(rate) + 4) - 0.05 * (i % 2),
        )
        for i, rate in enumerate(rates)
    ]

    def draws(prior: list[PastTrial]) -> tuple[Any, list[dict]]:
        settings = SearchSettings(
            seed=0, n_startup_trials=5, max_concurrent=1, space=space, prior=prior
        )
        searcher = ALGORITHMS["hyperopt"].build(settings)
        searcher.set_search_properties("accuracy", "max", to_tune_space(space))
        return searcher, [searcher.suggest(f"t{i}") for i in range(10)]

    def near_the_peak(configs: list[dict]) -> int:
        return sum(abs(math.log10(config["learning_rate"]) + 4) < 1 for config in configs)

    searcher, warm = draws(prior)
    history = searcher._hpopt_trials
    assert len(history.trials) == 30
    assert sorted(history.losses()[:20]) == sorted(-past.score for past in prior)
    assert near_the_peak(warm) >= 8, warm
    assert sum(config["lr_schedule"] == "cosine" for config in warm) >= 7, warm
    _, cold = draws([])
    assert near_the_peak(cold) < 8, cold


def test_past_trials_outside_the_space_are_left_out() -> None:
    space = {
        "learning_rate": Dimension("loguniform", (1e-5, 1e-3)),
        "batch_size": Dimension("choice", (16, 32)),
        "seed": Dimension("constant", (0,)),
    }
    trials = [
        {"config": {"learning_rate": 1e-4, "batch_size": 16, "seed": 0}, "best_metric": 0.8},
        {"config": {"learning_rate": 1e-2, "batch_size": 16, "seed": 0}, "best_metric": 0.7},
        {"config": {"learning_rate": 1e-4, "batch_size": 64, "seed": 0}, "best_metric": 0.7},
        {"config": {"learning_rate": 1e-4, "batch_size": 32, "seed": 0}, "best_metric": None},
    ]
    fitting, left_out = past_trials(trials, space)
    assert fitting == [PastTrial({"learning_rate": 1e-4, "batch_size": 16}, 0.8)]
    assert left_out == 2  # a learning rate and a batch size outside; the unscored one is skipped
