"""The `hpo` command line through a subprocess, as users run it: results, exit codes, no
tracebacks for user errors, and resuming an interrupted sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import tiny_sweep, write_yaml

pytestmark = pytest.mark.usefixtures("data_dir")


def hpo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "search.cli", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"},
    )


def test_validate_and_schema(tiny_model: str, tmp_path: Path) -> None:
    sweep = write_yaml(tmp_path / "s.yaml", tiny_sweep(tiny_model, tmp_path / "runs"))
    done = hpo("validate", str(sweep), "--set", "search.num_samples=3")
    assert done.returncode == 0, done.stderr
    assert "3 trials" in done.stdout and "random search" in done.stdout
    schema = json.loads(hpo("schema").stdout)
    assert "space" in schema["properties"]


@pytest.mark.parametrize(
    "override, message",
    [
        ("search.algorithm=bayes", "search.algorithm: Input should be"),
        ("model=no-such-model-anywhere", "model: cannot load 'no-such-model-anywhere'"),
        ("data.text=review", "data.text: column 'review' is not in data.train"),
        ("data.train=/nowhere/train.csv", "data.train: no such file: /nowhere/train.csv"),
    ],
)
def test_user_errors_exit_2_without_a_traceback(
    override: str, message: str, tiny_model: str, tmp_path: Path
) -> None:
    sweep = write_yaml(tmp_path / "s.yaml", tiny_sweep(tiny_model, tmp_path / "runs"))
    done = hpo("run", str(sweep), "--set", override, "--no-serve")
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_run_best_and_status(tiny_model: str, tmp_path: Path) -> None:
    sweep = write_yaml(tmp_path / "s.yaml", tiny_sweep(tiny_model, tmp_path / "runs"))
    done = hpo("run", str(sweep), "--no-serve")
    assert done.returncode == 0, done.stderr
    assert "best loss:" in done.stdout
    run_dir = tmp_path / "runs" / "tiny"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["num_trials"] == 2
    assert set(summary["best"]) >= {"metric", "config", "checkpoint", "trial_id", "epoch"}
    assert summary["algorithm"] == "random" and summary["scheduler"] == "fifo"
    assert summary["wall_s"] > 0

    best = json.loads(hpo("best", str(run_dir), "--json").stdout)
    assert best == summary["best"]
    status = hpo("status", str(run_dir), "--no-watch")
    assert status.returncode == 0
    assert "2/2 trials (2 completed)" in status.stdout and "finished" in status.stdout

    again = hpo("run", str(sweep), "--no-serve")  # the name is taken: a new run dir
    assert again.returncode == 0 and (tmp_path / "runs" / "tiny-2" / "summary.json").is_file()


def test_interrupted_sweep_resumes(tiny_model: str, tmp_path: Path) -> None:
    """Ctrl-C after the first report; `hpo resume` runs the remaining trials to the end."""
    tree = tiny_sweep(
        tiny_model, tmp_path / "runs",
        search={"algorithm": "random", "num_samples": 3, "max_concurrent": 1},
        scheduler={"name": "fifo", "max_epochs": 2},
    )
    sweep = write_yaml(tmp_path / "s.yaml", tree)
    run_dir = tmp_path / "runs" / "tiny"
    process = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "run", str(sweep), "--no-serve"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and not any(
        path.stat().st_size for path in run_dir.glob("*/result.json")
    ):
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert f"hpo resume {run_dir}" in stderr
    assert not (run_dir / "summary.json").exists()

    done = hpo("resume", str(run_dir), "--no-serve")
    assert done.returncode == 0, done.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["num_trials"] == 3
    assert summary["trial_states"] == {"completed": 3}
