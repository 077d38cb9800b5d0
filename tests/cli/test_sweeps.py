"""The sweep commands of `hpo` through a subprocess, as users run them: results, exit codes, no
tracebacks for user errors, resuming an interrupted sweep, and fast commands that import
neither Ray nor torch."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import pytest

from tests.helpers import (
    free_port,
    python_output,
    run_hpo,
    start_hpo,
    sweep_tree,
    tiny_sweep,
    wait_for,
    write_yaml,
)

pytestmark = pytest.mark.usefixtures("data_dir")


def test_commands_that_train_nothing_import_neither_ray_nor_torch(tmp_path: Path) -> None:
    sweep = write_yaml(tmp_path / "s.yaml", sweep_tree())
    output = python_output(
        "import sys; from hpo.cli.main import app",
        f"app(['validate', {str(sweep)!r}], standalone_mode=False)",
        "app(['schema'], standalone_mode=False)",
        "heavy = ('ray', 'torch', 'transformers', 'sklearn', 'optuna', 'datasets')",
        "print('HEAVY', [name for name in heavy if name in sys.modules])",
    )
    assert "HEAVY []" in output


def test_help_lists_the_registries() -> None:
    from hpo.search.algorithms import ALGORITHMS
    from hpo.search.schedulers import SCHEDULERS

    text = " ".join(run_hpo("compare", "--help").stdout.split())
    assert all(name in text for name in [*ALGORITHMS, *SCHEDULERS])


def test_a_renamed_key_still_works_with_a_warning(tmp_path: Path) -> None:
    sweep = write_yaml(tmp_path / "s.yaml", sweep_tree())
    done = run_hpo("validate", str(sweep), "--set", "serve.max_batch=8")
    assert done.returncode == 0, done.stderr
    assert "warning: serve.max_batch is renamed serve.max_inputs_per_request" in done.stderr
    both = run_hpo(
        "validate",
        str(sweep),
        "--set",
        "serve.max_batch=8",
        "--set",
        "serve.max_inputs_per_request=8",
    )
    assert both.returncode == 2 and "give only max_inputs_per_request" in both.stderr


def test_validate_and_schema(tiny_model: str, tmp_path: Path) -> None:
    sweep = write_yaml(tmp_path / "s.yaml", tiny_sweep(tiny_model, tmp_path / "runs"))
    done = run_hpo("validate", str(sweep), "--set", "search.num_samples=3")
    assert done.returncode == 0, done.stderr
    assert "3 trials" in done.stdout and "random search" in done.stdout
    assert "fifo scheduler, metric loss" in done.stdout
    compared_on = run_hpo("validate", str(sweep), "--set", "scheduler={name: asha, metric: f1}")
    assert "asha scheduler on f1, metric loss" in compared_on.stdout, compared_on.stderr
    schema = json.loads(run_hpo("schema").stdout)
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
    done = run_hpo("run", str(sweep), "--set", override, "--no-serve")
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_run_best_and_status(tiny_model: str, tmp_path: Path) -> None:
    sweep = write_yaml(tmp_path / "s.yaml", tiny_sweep(tiny_model, tmp_path / "runs"))
    done = run_hpo("run", str(sweep), "--no-serve")
    assert done.returncode == 0, done.stderr
    assert "best loss:" in done.stdout
    run_dir = tmp_path / "runs" / "tiny"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["num_trials"] == 2
    assert set(summary["best"]) >= {"metric", "config", "checkpoint", "trial_id", "epoch"}
    assert summary["algorithm"] == "random" and summary["scheduler"] == "fifo"
    assert summary["wall_s"] > 0

    best = json.loads(run_hpo("best", str(run_dir), "--json").stdout)
    assert best == summary["best"]
    status = run_hpo("status", str(run_dir), "--no-watch")
    assert status.returncode == 0
    assert "2/2 trials (2 completed)" in status.stdout and "finished" in status.stdout


CLEAN_EXIT = ("Traceback", "Aborted", "core dumped", "Fatal Python error", "*** SIG")


def reports_written(run_dir: Path) -> int:
    """How many reports the trials have written: a line each in Tune's result.json files."""
    return sum(len(path.read_text().splitlines()) for path in run_dir.glob("*/result.json"))


def a_report_after(run_dir: Path, seen: int) -> None:
    """Waits until the trials have written more than `seen` reports."""
    wait_for(lambda: reports_written(run_dir) > seen, f"a report past the first {seen}", 240)


def test_interrupted_sweep_resumes(tiny_model: str, tmp_path: Path) -> None:
    """Ctrl-C after the first report, then SIGTERM (as Kubernetes and systemd stop processes)
    after the resumed run's first new report: each a clean stop with exit code 130 that names
    the resume command; a last `hpo resume` runs the remaining trials to the end."""
    tree = tiny_sweep(
        tiny_model,
        tmp_path / "runs",
        search={"algorithm": "random", "num_samples": 3, "max_concurrent": 1},
        scheduler={"name": "fifo", "max_epochs": 2},
    )
    sweep = write_yaml(tmp_path / "s.yaml", tree)
    run_dir = tmp_path / "runs" / "tiny"
    for stop, command in (
        (signal.SIGINT, ("run", str(sweep))),
        (signal.SIGTERM, ("resume", str(run_dir))),
    ):
        # counted before the start: a stopped run may still write a report after its signal
        reports = reports_written(run_dir)
        process = start_hpo(*command, "--no-serve")
        a_report_after(run_dir, reports)
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 130, stderr
        assert f"hpo resume {run_dir}" in stderr
        assert not any(mark in stderr for mark in CLEAN_EXIT), stderr
        assert not (run_dir / "summary.json").exists()

    done = run_hpo("resume", str(run_dir), "--no-serve")
    assert done.returncode == 0, done.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["num_trials"] == 3
    assert summary["trial_states"] == {"completed": 3}


def test_compare_flags_become_compare_keys_and_bad_ones_are_named(tmp_path: Path) -> None:
    sweep = write_yaml(tmp_path / "sweep.yaml", tiny_sweep("unused-model", tmp_path / "runs"))
    done = run_hpo("compare", str(sweep), "--algorithms", "random,sobol", "--budget", "two epochs")
    assert done.returncode == 2
    assert "compare.algorithms.1" in done.stderr and "compare.budget" in done.stderr
    assert "Traceback" not in done.stderr


def test_sigterm_stops_a_foreground_service_cleanly(tiny_model: str, tmp_path: Path) -> None:
    """`hpo run` ends serving in the foreground; SIGTERM stops the service as Ctrl-C does."""
    tree = tiny_sweep(
        tiny_model, tmp_path / "runs", search={"algorithm": "random", "num_samples": 1}
    )
    tree["serve"] = {"port": free_port()}
    process = start_hpo("run", str(write_yaml(tmp_path / "s.yaml", tree)))
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "serving until Ctrl-C" in line:
            break
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, "".join(lines) + stdout + stderr
    assert "stopped serving" in stdout
    assert not any(mark in stderr for mark in CLEAN_EXIT), stderr


def test_a_taken_serve_port_is_named_not_a_ray_traceback(tiny_model: str, tmp_path: Path) -> None:
    tree = tiny_sweep(
        tiny_model, tmp_path / "runs", search={"algorithm": "random", "num_samples": 1}
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        tree["serve"] = {"port": port}
        process = start_hpo("run", str(write_yaml(tmp_path / "s.yaml", tree)))
        stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 2, stdout + stderr
    assert f"serve.port: cannot listen on 127.0.0.1:{port}" in stdout + stderr
    assert "Traceback" not in stdout + stderr


def test_best_prints_the_pareto_front_with_the_deployed_point(tmp_path: Path) -> None:
    def point(trial: str, accuracy: float, latency: float) -> dict:
        return {"trial_id": trial, "accuracy": accuracy, "latency_ms": latency, "config": {}}

    summary = {
        "name": "latency",
        "metric": "accuracy",
        "mode": "max",
        "num_trials": 5,
        "wall_s": 100.0,
        "objectives": [
            {"metric": "accuracy", "mode": "max"},
            {"metric": "latency_ms", "mode": "min"},
        ],
        "pareto_front": [point("deep", 0.9, 20.0), point("mid", 0.89, 12.0)],
        "selection": {"rule": "fastest_within: 0.01", "trial_id": "mid", "reason": "the fastest"},
        "best": {
            "metric": 0.89,
            "metrics": {"accuracy": 0.89, "latency_ms": 12.0},
            "config": {"num_layers": 3},
            "checkpoint": "/c/mid",
            "trial_id": "mid",
            "epoch": 1,
        },
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    shown = run_hpo("best", str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert "Pareto front of accuracy, latency_ms: 2 of 5 trials" in shown.stdout
    assert "* mid" in shown.stdout and "selected (fastest_within: 0.01)" in shown.stdout
    assert "best accuracy: 0.8900, latency_ms 12" in shown.stdout
