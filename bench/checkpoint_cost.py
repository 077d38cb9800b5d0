"""What one report's checkpoint costs: bytes written to disk and seconds, with the checkpoint
staged on disk (what a plain temporary folder gives, and hpo before 0.3) against staged in
memory (hpo's default where /dev/shm has room), side by side, alternating, `--rounds` times.

A report writes the MiniLM checkpoint (weights, tokenizer, AdamW state, LR schedule: everything
a resume needs) into a staging folder, then Ray copies it into the run dir; so does this
benchmark (`save_checkpoint`, then `pyarrow.fs.copy_files` as Ray's `persist_current_checkpoint`
does). Disk bytes are the process's `write_bytes` (/proc/self/io: what reached the storage
layer); writes to /dev/shm never do. With `--sweep`, the same is measured end to end on a real
one-trial sweep (4 reports), from the trial process's I/O counters.

    python bench/checkpoint_cost.py [--rounds 3] [--sweep]   # bench/results/checkpoint_cost.json
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pyarrow.fs
import torch
from quickstart_runs import is_trial_process, run_quickstart
from results import spread, write_result

from hpo.core.rundir import TRAINING_STATE
from hpo.trainables.checkpoints import (
    STAGING_ENV,
    TrainingState,
    checkpoint_bytes,
    save_checkpoint,
    staging_folder,
)

GOAL_RATIO = 0.5
TOLERANCE = 0.005  # the tokenizer's files and file-system metadata: a few kB of 273 MB


def _disk_bytes_written() -> int:
    return psutil.Process().io_counters().write_bytes


def minilm_with_optimizer_state():
    """The quickstart's model with AdamW state, as a trial has it at its first report."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hpo.trainables.models import resolve_model

    source = resolve_model("minilm")
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=2)
    tokenizer = AutoTokenizer.from_pretrained(source)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    batch = tokenizer(["a fine movie", "a dull one"], return_tensors="pt", padding=True)
    model(**batch, labels=torch.tensor([1, 0])).loss.backward()
    optimizer.step()
    return model, tokenizer, optimizer, scheduler


def one_report(parts, run_dir: Path, index: int) -> dict[str, float]:
    """Stage one checkpoint and copy it into `run_dir` as Ray does; its disk bytes and seconds."""
    model, tokenizer, optimizer, scheduler = parts
    os.sync()
    before, started = _disk_bytes_written(), time.perf_counter()
    with staging_folder(checkpoint_bytes(model, optimizer)) as folder:
        state = TrainingState(optimizer, scheduler, 1, {"accuracy": 0.5}, "bench")
        save_checkpoint(folder, model, tokenizer, state)
        destination = run_dir / f"checkpoint_{index:06d}"
        local = pyarrow.fs.LocalFileSystem()
        local.create_dir(str(destination))
        pyarrow.fs.copy_files(folder, str(destination), local, local)
    seconds = time.perf_counter() - started
    assert (destination / TRAINING_STATE).is_file()  # a resume still finds the optimizer state
    size = sum(f.stat().st_size for f in destination.iterdir())
    return {
        "disk_bytes": _disk_bytes_written() - before,
        "seconds": seconds,
        "checkpoint_bytes": size,
    }


def micro(rounds: int) -> dict:
    parts = minilm_with_optimizer_state()
    sides: dict[str, list[dict[str, float]]] = {"disk": [], "memory": []}
    with tempfile.TemporaryDirectory(dir=Path.home()) as scratch:
        disk_staging = Path(scratch, "staging")
        disk_staging.mkdir()
        for round_ in range(rounds):
            order = ["disk", "memory"] if round_ % 2 == 0 else ["memory", "disk"]
            for side in order:
                os.environ[STAGING_ENV] = str(disk_staging) if side == "disk" else "auto"
                run_dir = Path(scratch, f"{side}-{round_}")
                sides[side].append(one_report(parts, run_dir, round_))
                print(side, sides[side][-1], flush=True)
    os.environ.pop(STAGING_ENV)
    return {
        side: {
            "disk_mb": spread([r["disk_bytes"] / 1e6 for r in runs]),
            "seconds": spread([r["seconds"] for r in runs]),
            "checkpoint_mb": round(runs[0]["checkpoint_bytes"] / 1e6, 1),
        }
        for side, runs in sides.items()
    }


def _trial_disk_bytes(storage: str, staging: str) -> dict[str, float]:
    """A one-trial sweep of 4 reports; disk bytes its trial process wrote, per report."""
    peak: dict[int, int] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for process in psutil.process_iter(["cmdline"]):
                if is_trial_process(process.info["cmdline"]):
                    try:
                        peak[process.pid] = process.io_counters().write_bytes
                    except psutil.Error:
                        pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    overrides = {
        "search.num_samples": "1",
        "search.max_concurrent": "1",
        "scheduler": "{name: fifo, max_epochs: 1}",
        "data.max_train_samples": "256",
        "data.max_eval_samples": "64",
        "train.evals_per_epoch": "4",
    }
    try:
        run_quickstart(storage, overrides, env={STAGING_ENV: staging})
    finally:
        done.set()
        sampler.join()
    return {"disk_mb_per_report": round(sum(peak.values()) / 4 / 1e6, 1)}


def sweep() -> dict:
    with tempfile.TemporaryDirectory(dir=Path.home()) as scratch:
        disk_staging = Path(scratch, "staging")
        disk_staging.mkdir()
        return {
            "disk": _trial_disk_bytes(f"{scratch}/disk", str(disk_staging)),
            "memory": _trial_disk_bytes(f"{scratch}/memory", "auto"),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sweep", action="store_true", help="also measure a real sweep")
    args = parser.parse_args()
    figures = {"per_report": micro(args.rounds)}
    if args.sweep:
        figures["sweep"] = sweep()
    disk, memory = figures["per_report"]["disk"], figures["per_report"]["memory"]
    ratio = memory["disk_mb"]["median"] / disk["disk_mb"]["median"]
    seconds = memory["seconds"]["median"] / disk["seconds"]["median"]
    figures["ratio_disk_bytes"] = round(ratio, 3)
    figures["ratio_seconds"] = round(seconds, 3)
    path = write_result(
        "checkpoint_cost",
        goal=f"≤ {GOAL_RATIO}× the disk bytes per report, every checkpoint still resumable",
        met=ratio <= GOAL_RATIO + TOLERANCE,
        ratio=round(ratio, 3),
        figures=figures,
        summary=f"{memory['disk_mb']['median']:.0f} MB vs {disk['disk_mb']['median']:.0f} MB "
        f"to disk per report ({ratio:.2f}×), {memory['seconds']['median']:.2f} s vs "
        f"{disk['seconds']['median']:.2f} s ({seconds:.2f}×); checkpoint "
        f"{memory['checkpoint_mb']:.0f} MB with its optimizer state",
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
