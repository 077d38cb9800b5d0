"""Scheduler construction: epochs in the sweep file become Tune reports, per scheduler."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError
from ray.tune.schedulers import (
    ASHAScheduler,
    FIFOScheduler,
    HyperBandScheduler,
    MedianStoppingRule,
    PopulationBasedTraining,
)
from ray.tune.schedulers.pb2 import PB2

from hpo.search.schedulers import (
    SCHEDULERS,
    Resample,
    SchedulerConfig,
    SchedulerInputs,
    WithinSpace,
)
from hpo.search.space import Dimension
from hpo.search.sweepfile import parse_sweep
from tests.helpers import sweep_tree

SPACE = {
    "learning_rate": Dimension("loguniform", (1e-5, 1e-3)),
    "warmup_ratio": Dimension("uniform", (0.0, 0.2)),
    "lr_schedule": Dimension("choice", ("linear", "cosine")),
    "batch_size": Dimension("choice", (16, 32)),
}
BUDGET = SchedulerInputs(evals_per_epoch=2, num_trials=8, space=SPACE, seed=3)


def build(**section):
    return TypeAdapter(SchedulerConfig).validate_python(section).build(BUDGET)


def test_every_name_builds() -> None:
    built = {name: type(build(name=name, max_epochs=2)) for name in SCHEDULERS}
    assert built["fifo"] is FIFOScheduler
    assert built["asha"] is ASHAScheduler
    # both with Ray's bracket logic, in brackets that stop every trial they paused
    assert issubclass(built["hyperband"], HyperBandScheduler)
    assert issubclass(built["successive_halving"], HyperBandScheduler)
    assert built["median"] is MedianStoppingRule
    assert issubclass(built["pbt"], PopulationBasedTraining)
    assert issubclass(built["pb2"], PB2)


def test_asha_converts_epochs_to_reports() -> None:
    asha = build(name="asha", max_epochs=3, grace_period=0.5, reduction_factor=2, brackets=1)
    assert asha._max_t == 6  # 3 epochs x 2 evaluations
    assert asha._time_attr == "training_iteration"
    assert [milestone for milestone, _ in asha._brackets[0]._rungs] == [4, 2, 1]
    default = build(name="asha", max_epochs=1)
    assert [m for m, _ in default._brackets[0]._rungs] == [1]  # grace: one evaluation


def test_hyperband_brackets_follow_max_epochs() -> None:
    hyperband = build(name="hyperband", max_epochs=4, reduction_factor=2)
    assert hyperband._max_t_attr == 8
    assert hyperband._s_max_1 == 4  # brackets with 1, 2, 4, 8 reports to start with


def test_successive_halving_is_one_bracket_of_every_trial() -> None:
    halving = build(name="successive_halving", max_epochs=2, grace_period=0.5, reduction_factor=2)
    bracket = halving._create_bracket(0)
    assert bracket._n0 == 8  # every trial of the sweep
    assert bracket._r0 == 1  # grace: half an epoch = one report
    assert bracket._halves == 2  # rungs at 1, 2 and 4 reports (= max_epochs)
    assert halving._create_bracket(3)._n0 == 8  # the same shape whatever Hyperband asks for


def test_successive_halving_reaches_max_epochs_when_not_a_power() -> None:
    halving = build(name="successive_halving", max_epochs=2, reduction_factor=3)
    bracket = halving._create_bracket(0)
    # rungs at 1 and 3 reports, then max_t = 4 (Ray caps the last rung at max_t)
    assert bracket._halves == 2


def test_median_grace_in_reports() -> None:
    median = build(name="median", max_epochs=2, grace_period=1, min_samples_required=2)
    assert median._grace_period == 2
    assert median._min_samples_required == 2


def test_pbt_perturbs_the_searched_hyperparameters_it_may_change() -> None:
    pbt = build(name="pbt", max_epochs=2, perturbation_interval=0.5)
    assert pbt._perturbation_interval == 1  # half an epoch at 2 evaluations per epoch
    assert pbt._time_attr == "training_iteration" and pbt._synch
    mutations = pbt._hyperparam_mutations
    assert set(mutations) == {"learning_rate", "warmup_ratio", "lr_schedule"}  # not batch_size
    assert mutations["lr_schedule"] == ["linear", "cosine"]
    only = build(name="pbt", max_epochs=2, mutate=["learning_rate"])
    assert set(only._hyperparam_mutations) == {"learning_rate"}


def test_pb2_gives_its_bandit_the_searched_ranges_it_may_change() -> None:
    pb2 = build(name="pb2", max_epochs=2, perturbation_interval=1)
    assert pb2._perturbation_interval == 2 and pb2._synch
    assert pb2._hyperparam_bounds == {  # not lr_schedule, a choice
        "learning_rate": (1e-5, 1e-3),
        "warmup_ratio": (0.0, 0.2),
    }


def test_pbt_resamples_within_the_space_and_clamps_what_it_multiplies() -> None:
    import random

    random.seed(0)
    draws = [Resample(SPACE["learning_rate"])() for _ in range(200)]
    assert all(1e-5 <= d <= 1e-3 for d in draws)
    assert sum(d < 1e-4 for d in draws) > 60  # log-uniform: a third of the draws per decade
    clamp = WithinSpace(SPACE)
    config = {"learning_rate": 2e-3, "warmup_ratio": -0.1, "lr_schedule": "cosine"}
    assert clamp(config) == {"learning_rate": 1e-3, "warmup_ratio": 0.0, "lr_schedule": "cosine"}
    stepped = WithinSpace({"dropout": Dimension("quniform", (0.0, 0.3, 0.05))})
    assert stepped({"dropout": 0.12})["dropout"] == pytest.approx(0.1)


def test_a_scheduler_that_compares_trials_may_compare_them_on_another_metric() -> None:
    section = TypeAdapter(SchedulerConfig).validate_python({"name": "asha", "metric": "loss"})
    assert section.decides_on("accuracy") == "loss"
    default = TypeAdapter(SchedulerConfig).validate_python({"name": "hyperband"})
    assert default.decides_on("accuracy") == "accuracy"
    with pytest.raises(ValidationError, match="metric"):  # FIFO compares nothing
        TypeAdapter(SchedulerConfig).validate_python({"name": "fifo", "metric": "loss"})
    with pytest.raises(ValidationError, match="'accuracy', 'f1'"):
        TypeAdapter(SchedulerConfig).validate_python({"name": "asha", "metric": "latency_ms"})


@pytest.mark.parametrize("name", ["asha", "hyperband", "median", "pbt"])
def test_a_sweep_of_accuracy_whose_scheduler_compares_loss_gives_tune_both(name: str) -> None:
    """Tune's searcher optimises the sweep's metric; its scheduler decides on its own, and
    accepts Tune passing it the sweep's (Tune refuses a scheduler that declines)."""
    from hpo.search.runner import tune_config

    sweep = parse_sweep(
        sweep_tree(
            metric="accuracy",
            search={"algorithm": "random", "num_samples": 4, "max_concurrent": 4},
            scheduler={"name": name, "metric": "loss"},
        )
    )
    config = tune_config(sweep)
    assert (config.metric, config.mode) == ("accuracy", "max")
    scheduler = config.scheduler
    assert scheduler.set_search_properties(config.metric, config.mode)
    assert (scheduler._metric, scheduler._mode) == ("loss", "min")
    same = tune_config(parse_sweep(sweep_tree(metric="accuracy", scheduler={"name": name})))
    assert same.scheduler.set_search_properties("accuracy", "max")
    assert (same.scheduler._metric, same.scheduler._mode) == ("accuracy", "max")
