"""TensorBoard logs of the shared tiny comparison: one curve run per algorithm, one run per
trial with HParams data, and `hpo tensorboard` serving them to a real browser."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.conftest import REPO
from tests.helpers import CHROMIUM_ARGS, chromium, free_port
from tests.search.conftest import BUDGET


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
        assert steps == sorted(steps) and steps[-1] <= BUDGET  # the overshoot is not plotted
        assert values == sorted(values, reverse=True)  # best loss so far only goes down


def test_tensorboard_trial_runs_carry_scalars_and_hparams(comparison: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    trial_runs = [
        p for p in (comparison / "tensorboard" / "trials" / "tpe" / "asha" / "seed_1").iterdir()
    ]
    assert trial_runs
    for run in trial_runs:
        events = EventAccumulator(str(run))
        events.Reload()
        assert {
            "train/loss",
            "validation/loss",
            "validation/accuracy",
            "train/learning_rate",
            "final/loss",
        } <= set(events.Tags()["scalars"])
        hparams = events.PluginTagToContent("hparams")
        assert {metadata.SESSION_START_INFO_TAG, metadata.SESSION_END_INFO_TAG} <= set(hparams)
        start = metadata.parse_session_start_info_plugin_data(
            hparams[metadata.SESSION_START_INFO_TAG]
        )
        assert start.hparams["algorithm"].string_value == "tpe"
        assert start.hparams["seed"].number_value == 1
        assert 1e-4 <= start.hparams["learning_rate"].number_value <= 3e-3


def test_hpo_tensorboard_serves_the_runs_and_overlays_algorithms(comparison: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    board = subprocess.Popen(
        [sys.executable, "-m", "hpo.cli", "tensorboard", str(comparison), "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
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
            page.goto(
                f"{url}/#scalars&_smoothingWeight=0&regexInput=%5E(random%7Ctpe)%24"
                "&tagFilter=asha%2F"
            )
            page.get_by_text("asha/mean/best_loss_vs_samples").first.wait_for(timeout=60_000)
            page.wait_for_timeout(2000)  # let the charts draw
            assert page.get_by_text("tpe", exact=True).count() >= 1
            (REPO / "docs").mkdir(exist_ok=True)
            page.screenshot(path=str(REPO / "docs" / "tensorboard-test.png"))
            browser.close()
    finally:
        board.send_signal(signal.SIGINT)
        board.wait(timeout=30)
