"""Cold start and memory.

1. The commands that train nothing (`hpo --help`, `validate`, `schema`, `status`, `best`),
   each timed as a whole process, `--rounds` times: goal ≤ 1 s (median).
2. Time from `hpo run` to the first training step: the quickstart (MiniLM, SST-2) set to
   evaluate after its first step on 64 sentences, timed until that first report is printed,
   then stopped with SIGTERM; `--rounds` times. The figure includes import, Ray start, reading and
   tokenizing 2,000 sentences, loading the model, one step, that small evaluation and its
   checkpoint, so it bounds the first step from above. Goal ≤ 20 s (median).
3. Peak resident memory (RSS, and USS: the memory only that process holds) of the driver,
   each trial process and Ray's own processes, sampled every 0.5 s through two concurrent
   MiniLM trials of 400 sentences, `--rounds` times; per round, the larger trial counts.
   Goal ≤ 1.2 GB RSS per trial (median).

    python bench/cold_start.py [--rounds 3]    # writes bench/results/cold_start.json
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from quickstart_runs import REPO, is_trial_process
from results import spread, write_result

GOAL_COMMAND_S, GOAL_FIRST_STEP_S, GOAL_TRIAL_GB = 1.0, 20.0, 1.2


def _hpo(*args: str) -> list[str]:
    return [sys.executable, "-m", "hpo.cli", *args]


def _sets(storage: str, overrides: dict[str, str]) -> list[str]:
    sets = []
    for key, value in {"storage": storage, **overrides}.items():
        sets += ["--set", f"{key}={value}"]
    return sets


def command_seconds(run_dir: Path, rounds: int) -> dict[str, dict[str, float]]:
    commands = {
        "--help": ["--help"],
        "validate": ["validate", "examples/quickstart.yaml"],
        "schema": ["schema"],
        "status": ["status", str(run_dir), "--no-watch"],
        "best": ["best", str(run_dir)],
    }
    timings = {}
    for name, args in commands.items():
        seconds = []
        for _ in range(rounds):
            started = time.perf_counter()
            subprocess.run(_hpo(*args), cwd=REPO, check=True, capture_output=True)
            seconds.append(time.perf_counter() - started)
        timings[name] = spread(seconds)
    return timings


def first_step_seconds(storage: str) -> float:
    """Seconds from starting `hpo run` to its first printed report."""
    overrides = {
        "search.num_samples": "1",
        "search.max_concurrent": "1",
        "scheduler": "{name: fifo, max_epochs: 1}",
        "space.batch_size": "8",
        "train.evals_per_epoch": "250",  # 2,000 sentences / batch 8: a report after step 1
        "data.max_eval_samples": "64",
    }
    command = _hpo("run", "examples/quickstart.yaml", "--no-serve", *_sets(storage, overrides))
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )
    assert process.stdout is not None
    for line in process.stdout:
        if " epoch " in line:  # ConsoleProgress: "<trial> epoch 0.00  accuracy ..."
            seconds = time.perf_counter() - started
            break
    else:
        raise RuntimeError("the sweep ended without a report")
    process.send_signal(signal.SIGTERM)  # stops as Ctrl-C does
    process.communicate(timeout=300)
    return seconds


def _role(process: psutil.Process, driver: int) -> str | None:
    if process.pid == driver:
        return "driver"
    if is_trial_process(process.cmdline()):
        return "trial"
    return "ray_system"


def peak_memory(storage: str) -> dict[str, dict[str, float]]:
    """Peak RSS and USS in GB per role, over the whole sweep."""
    overrides = {
        "search.num_samples": "2",
        "search.max_concurrent": "2",
        "scheduler": "{name: fifo, max_epochs: 1}",
        "data.max_train_samples": "400",
    }
    command = _hpo("run", "examples/quickstart.yaml", "--no-serve", *_sets(storage, overrides))
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    driver = psutil.Process(process.pid)
    peaks: dict[str, dict[str, float]] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for child in [driver, *driver.children(recursive=True)]:
                try:
                    role = _role(child, process.pid)
                    memory = child.memory_full_info()
                except psutil.Error:
                    continue
                key = role if role != "trial" else f"trial {child.pid}"
                peak = peaks.setdefault(key, {"rss_gb": 0.0, "uss_gb": 0.0})
                peak["rss_gb"] = max(peak["rss_gb"], round(memory.rss / 1e9, 3))
                peak["uss_gb"] = max(peak["uss_gb"], round(memory.uss / 1e9, 3))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample)
    sampler.start()
    process.wait()
    done.set()
    sampler.join()
    return peaks


def memory_spread(rounds: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, dict]]:
    """Per role (driver, trial, ray_system), the spread over rounds of each round's peak (the
    larger trial's, for trials)."""
    roles = {}
    for role in ("driver", "trial", "ray_system"):
        per_round = [[v for k, v in peaks.items() if k.startswith(role)] for peaks in rounds]
        roles[role] = {
            unit: spread([max(process[unit] for process in found) for found in per_round])
            for unit in ("rss_gb", "uss_gb")
        }
    return roles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as storage:
        first_steps = [first_step_seconds(f"{storage}/first-{i}") for i in range(args.rounds)]
        rounds = [peak_memory(f"{storage}/memory-{i}") for i in range(args.rounds)]
        commands = command_seconds(Path(storage) / "memory-0" / "quickstart", args.rounds)
    memory = memory_spread(rounds)
    trial_rss = memory["trial"]["rss_gb"]
    slowest_command = max(t["median"] for t in commands.values())
    first_step = spread(first_steps)
    met = (
        slowest_command <= GOAL_COMMAND_S
        and first_step["median"] <= GOAL_FIRST_STEP_S
        and trial_rss["median"] <= GOAL_TRIAL_GB
    )
    path = write_result(
        "cold_start",
        goal=f"commands that train nothing ≤ {GOAL_COMMAND_S:.0f} s; first step ≤ "
        f"{GOAL_FIRST_STEP_S:.0f} s; ≤ {GOAL_TRIAL_GB} GB RSS per MiniLM trial",
        met=met,
        figures={"commands_s": commands, "first_step_s": first_step, "peak_memory": memory},
        summary=f"slowest command {slowest_command:.2f} s; first step "
        f"{first_step['median']:.1f} s; trial RSS {trial_rss['median']:.2f} GB "
        f"({trial_rss['min']:.2f}-{trial_rss['max']:.2f})",
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
