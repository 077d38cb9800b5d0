"""`hpo compare`: the plan of arms, fairness (same budget, seeds), the analysis, and one real tiny
comparison read back from its TensorBoard event files, report and a TensorBoard server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from search.analysis import ArmResult, best_so_far_at, default_target, table, verdict
from search.compare import arm_sweep, plan_arms
from search.compute import CurvePoint, SampleBudget, within_budget
from search.storage import StorageDir
from search.sweep import parse_sweep
from tests.conftest import REPO
from tests.helpers import CHROMIUM_ARGS, chromium, free_port, tiny_sweep
from trainables.errors import UserError

TRAIN = 256  # training examples of the tiny sweep
BUDGET = 512  # samples per arm: two epochs
PER_REPORT = TRAIN // 2  # two evaluations per epoch


def compare_sweep(tmp_path: Path, **sections):
    return parse_sweep(tiny_sweep("unused-model", tmp_path / "runs", **sections))


# --- the plan, without Ray ---------------------------------------------------------------------

def test_arms_put_seeds_outermost_and_default_to_the_sweeps_scheduler(tmp_path: Path) -> None:
    sweep = compare_sweep(tmp_path, compare={"algorithms": ["random", "tpe"], "seeds": 2})
    assert [a.name for a in plan_arms(sweep)] == [
        "random-fifo-seed0", "tpe-fifo-seed0", "random-fifo-seed1", "tpe-fifo-seed1"]


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
        tmp_path, scheduler={"name": "successive_halving", "max_epochs": 2, "grace_period": 0.5,
                             "reduction_factor": 2},
        compare={"algorithms": ["random"]})
    arms = StorageDir.at(tmp_path / "arms")
    arm = arm_sweep(sweep, plan_arms(sweep)[0], 16 * PER_REPORT, TRAIN, arms)
    # rungs at 1, 2, 4 reports: 1 + 1/2 + 2/4 = 2 reports per started trial
    assert arm.search.num_samples == 8


def test_an_algorithm_that_cannot_search_the_space_fails_before_ray(tmp_path: Path) -> None:
    sweep = compare_sweep(
        tmp_path, space={"learning_rate": {"grid": [1e-4, 1e-3]}},
        compare={"algorithms": ["random", "tpe"]})
    expected = "(?s)compare.algorithms: tpe cannot run.*space.learning_rate: grid values"
    with pytest.raises(UserError, match=expected):
        arm_sweep(sweep, plan_arms(sweep)[1], BUDGET, TRAIN, StorageDir.at(tmp_path / "arms"))


@pytest.mark.parametrize("budget, samples", [(None, 8 * 1 * TRAIN), (5000, 5000),
                                             ("3 epochs", 3 * TRAIN), ("1.5 epoch", 384)])
def test_budget_in_samples_or_epochs(tmp_path: Path, budget, samples: int) -> None:
    sweep = compare_sweep(tmp_path, search={"algorithm": "tpe", "num_samples": 8},
                          compare={"budget": budget})
    assert sweep.compare.budget_samples(TRAIN, sweep.num_trials() * 1) == samples


@pytest.mark.parametrize("budget", ["six epochs", 0, "0 epochs"])
def test_a_bad_budget_names_the_key(tmp_path: Path, budget) -> None:
    with pytest.raises(UserError, match="compare.budget"):
        compare_sweep(tmp_path, compare={"budget": budget})


def test_cli_flags_become_compare_keys_and_bad_ones_are_named(tmp_path: Path) -> None:
    from tests.helpers import write_yaml

    sweep = write_yaml(tmp_path / "sweep.yaml", tiny_sweep("unused-model", tmp_path / "runs"))
    result = subprocess.run(
        [sys.executable, "-m", "search.cli", "compare", str(sweep), "--algorithms", "random,sobol",
         "--budget", "two epochs"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 2
    assert "compare.algorithms.1" in result.stderr and "compare.budget" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_budget_stops_everything_once_spent() -> None:
    stopper = SampleBudget(300)
    assert not stopper("a", {"samples": 128}) and not stopper.stop_all()
    stopper("b", {"samples": 128})
    stopper("a", {"samples": 256})  # a's running count: 256, not 128 + 256
    assert stopper.ledger.total == 384 and stopper.stop_all()


# --- the analysis, on made-up curves -------------------------------------------------------------

def arm(algorithm: str, seed: int, bests: list[float]) -> ArmResult:
    curve = [CurvePoint(100 * (i + 1), 10.0 * (i + 1), f"t{i}", b, b) for i, b in enumerate(bests)]
    return ArmResult(algorithm, "asha", seed, curve, wall_s=30.0, trials=[{}] * len(bests))


def test_best_so_far_is_a_step_function_of_compute() -> None:
    curve = arm("tpe", 0, [0.5, 0.6, 0.7]).curve
    values = best_so_far_at(curve, [50, 100, 250, 1000], "samples")
    assert list(values[1:]) == [0.5, 0.6, 0.7] and values[0] != values[0]  # NaN before any
    assert within_budget(curve, 150) == curve[:2]


def test_table_ranks_reach_and_a_clear_winner() -> None:
    arms = [arm("tpe", s, [0.80, 0.90 + 0.001 * s]) for s in range(3)]
    arms += [arm("random", s, [0.70, 0.80 + 0.001 * s]) for s in range(3)]
    target = default_target(arms, "max")
    assert target == pytest.approx(0.80)
    rows = table(arms, "max", target)
    assert [r.algorithm for r in rows] == ["tpe", "random"]
    assert [r.mean_rank for r in rows] == [1.0, 2.0]
    assert rows[0].samples_to_target == 100 and rows[1].samples_to_target == 200
    assert "The lead exceeds the seed spread" in verdict(rows, "accuracy")


def test_a_lead_inside_seed_noise_is_called_noise() -> None:
    arms = [arm("tpe", s, [v]) for s, v in enumerate([0.80, 0.86, 0.83])]
    arms += [arm("random", s, [v]) for s, v in enumerate([0.82, 0.81, 0.84])]
    rows = table(arms, "max", 0.8)
    text = verdict(rows, "accuracy")
    assert "does not exceed the seed spread" in text and "Welch" in text


def test_a_lead_beyond_the_spread_but_not_significant_is_said_so() -> None:
    arms = [arm("tpe", s, [v]) for s, v in enumerate([0.80, 0.86, 0.83])]
    arms += [arm("random", s, [v]) for s, v in enumerate([0.78, 0.80, 0.79])]
    text = verdict(table(arms, "max", 0.78), "accuracy")
    assert "exceeds the spread but is not significant with 3 seeds" in text


# --- one real tiny comparison --------------------------------------------------------------------

@pytest.fixture(scope="module")
def comparison(tiny_model: str, tmp_path_factory, ray_session, data_dir) -> Path:
    from search.compare import run_comparison

    tmp_path = tmp_path_factory.mktemp("compare")
    sweep = parse_sweep(tiny_sweep(
        tiny_model, tmp_path / "runs",
        scheduler={"name": "asha", "max_epochs": 1, "grace_period": 0.5, "reduction_factor": 2},
        compare={"algorithms": ["random", "tpe"], "schedulers": ["fifo", "asha"], "seeds": 2,
                 "budget": BUDGET},
    ))
    return run_comparison(sweep).local


def test_every_arm_spends_the_same_budget(comparison: Path) -> None:
    result = json.loads((comparison / "comparison.json").read_text())
    assert len(result["arms"]) == 8
    for one in result["arms"]:
        # the report that crosses the budget is the last counted; it adds at most one report
        assert BUDGET <= one["samples_used"] < BUDGET + PER_REPORT
    assert {(r["scheduler"], r["algorithm"]) for r in result["rows"]} == {
        ("fifo", "random"), ("fifo", "tpe"), ("asha", "random"), ("asha", "tpe")}
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


def test_tensorboard_has_one_curve_run_per_algorithm(comparison: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for algorithm in ("random", "tpe"):
        events = EventAccumulator(str(comparison / "tensorboard" / algorithm))
        events.Reload()
        tags = set(events.Tags()["scalars"])
        for scheduler in ("fifo", "asha"):
            for section in ("seed_0", "seed_1", "mean"):
                assert f"{scheduler}/{section}/best_loss_vs_samples" in tags
            assert f"{scheduler}/seed_0/best_loss_vs_seconds" in tags
        curve = events.Scalars("asha/seed_0/best_loss_vs_samples")
        steps, values = [e.step for e in curve], [e.value for e in curve]
        assert steps == sorted(steps) and steps[-1] >= BUDGET
        assert values == sorted(values, reverse=True)  # best loss so far only goes down


def test_tensorboard_trial_runs_carry_scalars_and_hparams(comparison: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    trial_runs = [p for p in (comparison / "tensorboard" / "trials" / "tpe" / "asha" / "seed_1")
                  .iterdir()]
    assert trial_runs
    for run in trial_runs:
        events = EventAccumulator(str(run))
        events.Reload()
        assert {"train/loss", "validation/loss", "validation/accuracy", "train/learning_rate",
                "final/loss"} <= set(events.Tags()["scalars"])
        hparams = events.PluginTagToContent("hparams")
        assert {metadata.SESSION_START_INFO_TAG, metadata.SESSION_END_INFO_TAG} <= set(hparams)
        start = metadata.parse_session_start_info_plugin_data(
            hparams[metadata.SESSION_START_INFO_TAG])
        assert start.hparams["algorithm"].string_value == "tpe"
        assert start.hparams["seed"].number_value == 1
        assert 1e-4 <= start.hparams["learning_rate"].number_value <= 3e-3


def test_report_has_table_curves_and_importance(comparison: Path) -> None:
    report = (comparison / "report.md").read_text()
    assert "| asha | tpe |" in report and "| fifo | random |" in report
    assert "seed-to-seed standard deviation" in report
    assert "| learning_rate |" in report  # fANOVA importance table
    for picture in ("curves_fifo.png", "curves_asha.png", "importance.png",
                    "parallel_coordinates.png"):
        assert (comparison / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({picture})" in report


def test_hpo_report_of_a_single_run(comparison: Path) -> None:
    from search.report import write_run_report
    from search.storage import StorageDir

    report = write_run_report(StorageDir.at(comparison / "arms" / "tpe-asha-seed0"))
    text = report.read_text()
    assert "Best loss" in text and "![curve.png](curve.png)" in text
    assert (report.parent / "curve.png").is_file() and (report.parent / "importance.png").is_file()


def test_hpo_tensorboard_serves_the_runs_and_overlays_algorithms(comparison: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    board = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "tensorboard", str(comparison), "--port", str(port)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        runs = None
        for _ in range(60):
            try:
                runs = requests.get(f"{url}/data/runs", timeout=2).json()
                break
            except requests.ConnectionError:
                time.sleep(1)
        assert runs is not None, "TensorBoard did not answer"
        assert {"random", "tpe"} <= set(runs)
        assert any(run.startswith("trials/tpe/asha/seed_0/") for run in runs)

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/#scalars&_smoothingWeight=0&regexInput=%5E(random%7Ctpe)%24"
                      "&tagFilter=asha%2F")
            page.get_by_text("asha/mean/best_loss_vs_samples").first.wait_for(timeout=60_000)
            page.wait_for_timeout(2000)  # let the charts draw
            assert page.get_by_text("tpe", exact=True).count() >= 1
            (REPO / "docs").mkdir(exist_ok=True)
            page.screenshot(path=str(REPO / "docs" / "tensorboard-test.png"))
            browser.close()
    finally:
        board.send_signal(signal.SIGINT)
        board.wait(timeout=30)
