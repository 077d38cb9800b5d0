"""What the benchmarks share: `hpo run examples/quickstart.yaml` in a subprocess, with
overrides, timed as a whole command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def is_trial_process(command_line: list[str] | None) -> bool:
    """Whether a process is a trial: Ray titles it after its actor (`ray::ImplicitFunc`) or
    its function (`_train_in_trial`)."""
    title = " ".join(command_line or [])
    return title.startswith("ray::ImplicitFunc") or "_train_in_trial" in title


def short_trials(samples: int, trials: int, threads: int = 2) -> dict[str, str]:
    """Overrides that shrink the quickstart to `trials` one-epoch trials, one at a time."""
    return {
        "train.cpus_per_worker": str(threads),
        "data.max_train_samples": str(samples),
        "search.num_samples": str(trials),
        "search.max_concurrent": "1",
        "scheduler": "{name: fifo, max_epochs: 1}",
    }


def run_quickstart(
    storage: str, overrides: dict[str, str] | None = None, env: dict[str, str] | None = None
) -> tuple[float, str]:
    """Runs the quickstart sweep into `storage` (`--no-serve`); returns its wall seconds and
    its output."""
    sets = [f"{key}={value}" for key, value in {"storage": storage, **(overrides or {})}.items()]
    command = [sys.executable, "-m", "hpo.cli", "run", "examples/quickstart.yaml", "--no-serve"]
    for assignment in sets:
        command += ["--set", assignment]
    started = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return time.perf_counter() - started, done.stdout
