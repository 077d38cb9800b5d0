"""Sweeps against real faults, each `hpo run` in its own process with its own embedded Ray:
a trial's process or a Ray Train worker SIGKILLed mid-epoch (retried from its checkpoint),
the driver SIGKILLed with its whole Ray (resumed with `hpo resume`), and a full disk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import (
    kill_tree,
    processes_named,
    result_rows,
    run_hpo,
    start_hpo,
    tiny_sweep,
    wait_for,
    write_yaml,
)

pytestmark = pytest.mark.usefixtures("data_dir")


def long_trials(tiny_model: str, storage: Path, **sections) -> dict:
    """Trials of 2 epochs over 2,048 sentences, 4 evaluations per epoch: seconds each, time
    enough to kill something between two evaluations."""
    tree = tiny_sweep(tiny_model, storage, scheduler={"name": "fifo", "max_epochs": 2}, **sections)
    tree["data"]["max_train_samples"] = 2048
    tree["train"] = {**tree["train"], "evals_per_epoch": 4, "cpus_per_worker": 1}
    return tree


def first_report(run_dir: Path) -> bool:
    return any(rows for rows in result_rows(run_dir).values())


@pytest.mark.parametrize(
    "launcher, victim", [("in_trial", "ray::ImplicitFunc"), ("ray_train", "ray::RayTrainWorker")]
)
def test_a_killed_trial_goes_on_from_its_checkpoint(
    launcher: str, victim: str, tiny_model: str, tmp_path: Path
) -> None:
    """The trial's process (in_trial) or its Ray Train worker (ray_train) SIGKILLed after its
    first evaluation: with search.max_failures the trial goes on from that checkpoint (its
    first quarter epoch is not trained again), and it is one trial in the results."""
    tree = long_trials(
        tiny_model,
        tmp_path / "runs",
        search={"algorithm": "random", "num_samples": 1, "max_failures": 2},
        train={"launcher": launcher},
    )
    run_dir = tmp_path / "runs" / "tiny"
    process = start_hpo("run", str(write_yaml(tmp_path / "s.yaml", tree)), "--no-serve")
    wait_for(lambda: first_report(run_dir), "the first evaluation")
    (victim_process,) = wait_for(lambda: processes_named(process.pid, victim), victim)
    victim_process.kill()
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]

    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 1 and list(trials.state) == ["completed"]
    (rows,) = result_rows(run_dir).values()
    epochs = [row["epoch"] for row in rows]
    assert epochs.count(0.25) == 1  # not trained again from scratch
    assert epochs[-1] == 2.0 and sorted(set(epochs)) == [e / 4 for e in range(1, 9)]
    if launcher == "in_trial":  # Tune restored the trial (Ray Train restarts its own workers)
        assert any(r["iterations_since_restore"] < r["training_iteration"] for r in rows)
    print(f"{launcher}: killed {victim} once; reports at epochs {epochs}")


def test_a_killed_driver_is_resumed_without_losing_or_repeating_trials(
    tiny_model: str, tmp_path: Path
) -> None:
    """`hpo run` SIGKILLed with its whole Ray while its second TPE trial trains: `hpo resume`
    keeps the first trial's results (not rerun), continues the second from its checkpoint,
    restores the searcher (three trials in all, the first two with their configs), and the
    results hold each trial once."""
    tree = long_trials(
        tiny_model,
        tmp_path / "runs",
        search={"algorithm": "tpe", "num_samples": 3, "max_concurrent": 1, "n_startup_trials": 2},
    )
    run_dir = tmp_path / "runs" / "tiny"
    process = start_hpo("run", str(write_yaml(tmp_path / "s.yaml", tree)), "--no-serve")
    wait_for(lambda: len([r for r in result_rows(run_dir).values() if r]) >= 2, "trial 2")
    before = result_rows(run_dir)
    kill_tree(process.pid)
    process.communicate(timeout=60)
    assert not (run_dir / "summary.json").exists()

    done = run_hpo("resume", str(run_dir), "--no-serve", timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["num_trials"] == 3 and summary["trial_states"] == {"completed": 3}
    trials = pd.read_csv(run_dir / "trials.csv")
    assert trials.trial_id.is_unique and len(trials) == 3
    after = result_rows(run_dir)
    finished = [t for t, rows in before.items() if rows[-1]["epoch"] == 2.0]
    for trial in finished:  # not rerun: not one report more
        assert len(after[trial]) == len(before[trial])
    interrupted = [t for t, rows in before.items() if rows[-1]["epoch"] < 2.0]
    for trial in interrupted:
        epochs = [row["epoch"] for row in after[trial]]
        assert epochs.count(0.25) == 1 and epochs[-1] == 2.0  # went on, not from scratch
    configs = dict(zip(trials.trial_id, trials["config.learning_rate"], strict=True))
    for trial, rows in before.items():
        assert configs[trial] == pytest.approx(rows[0]["config"]["learning_rate"])
    curve = pd.read_csv(run_dir / "curve.csv")
    assert curve.samples.is_monotonic_increasing  # cut back to the snapshot, no repeats
    print(f"killed the driver with {len(finished)} finished and {len(interrupted)} running")


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 40 MB tmpfs (root only: CI runs as root), grown to 400 MB by `grow()`."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)], check=True)

    def grow() -> None:
        subprocess.run(["mount", "-o", "remount,size=400m", str(mount)], check=True)

    yield mount, grow
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_filling_disk_ends_the_sweep_with_a_message_and_it_resumes(
    small_disk, tiny_model: str
) -> None:
    """On a 40 MB disk, a sweep of 13 MB checkpoints stops while every file can still be
    written whole, says why, and finishes with `hpo resume` once there is room."""
    mount, grow = small_disk
    tree = long_trials(tiny_model, mount / "runs", search={"algorithm": "random", "num_samples": 4})
    sweep = write_yaml(mount.parent / "s.yaml", tree)
    done = run_hpo("run", str(sweep), "--no-serve", timeout=900)
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"the disk that holds {mount / 'runs' / 'tiny'} has" in done.stderr
    assert "MB the next checkpoints need: the sweep stopped before running out" in done.stderr
    assert f"hpo resume {mount / 'runs' / 'tiny'}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (mount / "runs" / "tiny" / "summary.json").exists()

    grow()
    resumed = run_hpo("resume", str(mount / "runs" / "tiny"), "--no-serve", timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    summary = json.loads((mount / "runs" / "tiny" / "summary.json").read_text())
    assert summary["num_trials"] == 4 and summary["trial_states"] == {"completed": 4}
