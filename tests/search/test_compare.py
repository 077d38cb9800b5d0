"""`hpo compare`: the plan of arms and their sweeps (without Ray), and one real tiny comparison
whose arms all spend the same budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpo.core.errors import UserError
from hpo.core.rundir import CURVE
from hpo.core.storage import StorageDir
from hpo.search.compare import arm_sweep, plan_arms
from hpo.search.compute import read_curve
from hpo.search.sweepfile import parse_sweep
from tests.helpers import (
    kill_tree,
    result_rows,
    run_hpo,
    start_hpo,
    tiny_sweep,
    wait_for,
    write_yaml,
)
from tests.search.conftest import BUDGET, PER_REPORT, TRAIN


def compare_sweep(tmp_path: Path, **sections):
    return parse_sweep(tiny_sweep("unused-model", tmp_path / "runs", **sections))


def test_arms_put_seeds_outermost_and_default_to_the_sweeps_scheduler(tmp_path: Path) -> None:
    sweep = compare_sweep(tmp_path, compare={"algorithms": ["random", "tpe"], "seeds": 2})
    assert [a.name for a in plan_arms(sweep)] == [
        "random-fifo-seed0",
        "tpe-fifo-seed0",
        "random-fifo-seed1",
        "tpe-fifo-seed1",
    ]


def test_an_arm_seeds_search_and_training_and_gets_enough_trials(tmp_path: Path) -> None:
    sweep = compare_sweep(tmp_path, compare={"algorithms": ["tpe"], "schedulers": ["asha"]})
    arm = plan_arms(sweep)[0]
    one = arm_sweep(sweep, arm, BUDGET, TRAIN, StorageDir.at(tmp_path / "arms"))
    assert (one.search.algorithm, one.search.seed, one.scheduler.name) == ("tpe", 0, "asha")
    assert one.space["seed"].args == (0,)
    assert one.search.num_samples * PER_REPORT > BUDGET  # the budget, not num_samples, ends it
    assert not one.serve.enabled and one.name == "tpe-asha-seed0"


def test_grid_search_runs_a_discretised_space(tmp_path: Path) -> None:
    sweep = compare_sweep(tmp_path, compare={"algorithms": ["grid"], "grid_points": 3})
    grid = arm_sweep(sweep, plan_arms(sweep)[0], BUDGET, TRAIN, StorageDir.at(tmp_path / "arms"))
    learning_rates = grid.space["learning_rate"].args
    assert grid.space["learning_rate"].kind == "grid" and len(learning_rates) == 3
    assert learning_rates[0] == pytest.approx(1e-4) and learning_rates[2] == pytest.approx(3e-3)
    assert learning_rates[1] == pytest.approx((1e-4 * 3e-3) ** 0.5)  # log-spaced
    assert grid.space["batch_size"].args == (16, 32)
    assert grid.num_trials() == 6


def test_successive_halving_gets_one_bracket_sized_to_the_budget(tmp_path: Path) -> None:
    sweep = compare_sweep(
        tmp_path,
        scheduler={
            "name": "successive_halving",
            "max_epochs": 2,
            "grace_period": 0.5,
            "reduction_factor": 2,
        },
        compare={"algorithms": ["random"]},
    )
    arms = StorageDir.at(tmp_path / "arms")
    arm = arm_sweep(sweep, plan_arms(sweep)[0], 16 * PER_REPORT, TRAIN, arms)
    # rungs at 1, 2, 4 reports: 1 + 1/2 + 2/4 = 2 reports per started trial
    assert arm.search.num_samples == 8


def test_other_schedulers_take_the_sweeps_grace_period_reduction_factor_and_metric(
    tmp_path: Path,
) -> None:
    asha = {"grace_period": 0.25, "reduction_factor": 2, "metric": "loss"}
    sweep = compare_sweep(
        tmp_path,
        scheduler={"name": "asha", "max_epochs": 1, **asha},
        compare={"algorithms": ["random"], "schedulers": ["asha", "hyperband", "median", "fifo"]},
    )
    arms = StorageDir.at(tmp_path / "arms")
    built = {
        arm.scheduler: arm_sweep(sweep, arm, BUDGET, TRAIN, arms).scheduler
        for arm in plan_arms(sweep)
    }
    assert built["hyperband"].reduction_factor == 2  # not Hyperband's default of 3
    assert built["hyperband"].max_epochs == 1
    assert built["median"].grace_period == 0.25
    assert not hasattr(built["median"], "reduction_factor")
    assert built["hyperband"].metric == built["median"].metric == "loss"
    assert not hasattr(built["fifo"], "metric")  # compares no trials


@pytest.mark.parametrize("population", ["pbt", "pb2"])
def test_a_population_runs_as_a_random_arm_that_trains_the_budget(
    population: str, tmp_path: Path
) -> None:
    sweep = compare_sweep(
        tmp_path,
        compare={"algorithms": ["random", "tpe"], "schedulers": ["asha", population], "seeds": 1},
    )
    arms = plan_arms(sweep)
    names = ["random-asha-seed0", "tpe-asha-seed0", f"random-{population}-seed0"]
    assert [a.name for a in arms] == names
    arm = arm_sweep(sweep, arms[-1], 3 * TRAIN, TRAIN, StorageDir.at(tmp_path / "arms"))
    assert arm.scheduler.name == population and arm.scheduler.max_epochs == 1
    assert arm.search.num_samples == 3  # three full trials: the budget of three epochs
    assert arm.search.max_concurrent == 3  # side by side
    with pytest.raises(UserError, match=f"{population} runs with random search only"):
        compare_sweep(tmp_path, compare={"algorithms": ["tpe"], "schedulers": [population]})


def test_an_algorithm_that_cannot_search_the_space_fails_before_ray(tmp_path: Path) -> None:
    sweep = compare_sweep(
        tmp_path,
        space={"learning_rate": {"grid": [1e-4, 1e-3]}},
        compare={"algorithms": ["random", "tpe"]},
    )
    expected = "(?s)compare.algorithms: tpe cannot run.*space.learning_rate: grid values"
    with pytest.raises(UserError, match=expected):
        arm_sweep(sweep, plan_arms(sweep)[1], BUDGET, TRAIN, StorageDir.at(tmp_path / "arms"))


@pytest.mark.parametrize(
    "budget, samples",
    [(None, 8 * 1 * TRAIN), (5000, 5000), ("3 epochs", 3 * TRAIN), ("1.5 epoch", 384)],
)
def test_budget_in_samples_or_epochs(tmp_path: Path, budget, samples: int) -> None:
    sweep = compare_sweep(
        tmp_path, search={"algorithm": "tpe", "num_samples": 8}, compare={"budget": budget}
    )
    assert sweep.compare.budget_samples(TRAIN, sweep.num_trials() * 1) == samples


@pytest.mark.parametrize("budget", ["six epochs", 0, "0 epochs"])
def test_a_bad_budget_names_the_key(tmp_path: Path, budget) -> None:
    with pytest.raises(UserError, match="compare.budget"):
        compare_sweep(tmp_path, compare={"budget": budget})


def test_every_arm_spends_the_same_budget(comparison: Path) -> None:
    result = json.loads((comparison / "comparison.json").read_text())
    assert len(result["arms"]) == 8
    for one in result["arms"]:
        run = comparison / "arms" / f"{one['algorithm']}-{one['scheduler']}-seed{one['seed']}"
        within = [p for p in read_curve(run / CURVE) if p.samples <= BUDGET]
        # every headline figure comes from a report within the budget (loss: lower is better)
        assert one["final_best"] == min(p.value for p in within)
        assert one["samples_counted"] == within[-1].samples <= BUDGET
        # the budget is spent; what trials trained past it is reported apart
        assert BUDGET <= one["samples_trained"] < BUDGET + 2 * PER_REPORT
        assert one["overshoot"] == one["samples_trained"] - BUDGET
    for row in result["rows"]:
        assert sorted(row["finals"]) == sorted(
            a["final_best"]
            for a in result["arms"]
            if (a["algorithm"], a["scheduler"]) == (row["algorithm"], row["scheduler"])
        )
    assert {(r["scheduler"], r["algorithm"]) for r in result["rows"]} == {
        ("fifo", "random"),
        ("fifo", "tpe"),
        ("asha", "random"),
        ("asha", "tpe"),
    }
    assert all(len(r["finals"]) == 2 for r in result["rows"])
    assert set(result["verdicts"]) == {"fifo", "asha"}


def test_ended_arms_keep_models_but_not_optimizer_states(comparison: Path) -> None:
    assert list(comparison.rglob("model.safetensors"))
    assert not list(comparison.rglob("training_state.pt"))


def test_arms_with_the_same_seed_train_with_the_same_seed(comparison: Path) -> None:
    for run_dir in (comparison / "arms").iterdir():
        seed = int(run_dir.name.rsplit("seed", 1)[1])
        trials = json.loads((run_dir / "trials.json").read_text())
        assert {t["config"]["seed"] for t in trials} == {seed}


def test_a_killed_comparison_resumes_where_it_stopped(
    tiny_model: str, tmp_path: Path, data_dir: Path
) -> None:
    """`hpo compare` SIGKILLed with its whole Ray during its second arm: `hpo resume` keeps the
    first arm as it was, finishes the second under the same budget (its stopper catches up
    on the trials that ran before), and writes the report."""
    tree = tiny_sweep(
        tiny_model,
        tmp_path / "runs",
        compare={"algorithms": ["random", "tpe"], "seeds": 1, "budget": 4 * PER_REPORT},
    )
    tree["search"]["n_startup_trials"] = 2
    compare_dir = tmp_path / "runs" / "tiny-compare"
    process = start_hpo("compare", str(write_yaml(tmp_path / "s.yaml", tree)))
    first = compare_dir / "arms" / "random-fifo-seed0"
    second = compare_dir / "arms" / "tpe-fifo-seed0"
    wait_for(lambda: (first / "summary.json").is_file() and result_rows(second), "arm 2")
    kept = (first / "summary.json").read_text()
    kill_tree(process.pid)
    process.communicate(timeout=60)

    done = run_hpo("resume", str(compare_dir), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (first / "summary.json").read_text() == kept  # not run again
    result = json.loads((compare_dir / "comparison.json").read_text())
    assert {arm["algorithm"] for arm in result["arms"]} == {"random", "tpe"}
    for arm in result["arms"]:
        assert arm["samples_counted"] <= 4 * PER_REPORT <= arm["samples_trained"]
        assert arm["samples_trained"] < 5 * PER_REPORT
    assert (compare_dir / "report.md").is_file()
