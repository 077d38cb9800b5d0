"""What a Ray Train worker group costs per trial: the quickstart's model and data, shrunk to
short trials, run once with `launcher: in_trial` and once with `launcher: ray_train` (1 worker).

    python bench/launcher_overhead.py [--samples 500] [--trials 2]

Prints per-trial seconds (Tune's time_total_s, from trial start to its last report) and the
whole command's wall time for each launcher, and the difference per trial.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(launcher: str, samples: int, trials: int) -> dict:
    with tempfile.TemporaryDirectory() as storage:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "search.cli", "run", "examples/quickstart.yaml", "--no-serve",
             "--set", f"storage={storage}", "--set", f"train.launcher={launcher}",
             "--set", "train.cpus_per_worker=2", "--set", f"data.max_train_samples={samples}",
             "--set", f"search.num_samples={trials}", "--set", "search.max_concurrent=1",
             "--set", "scheduler={name: fifo, max_epochs: 1}"],
            cwd=REPO, check=True, capture_output=True,
        )
        wall = time.perf_counter() - started
        summary = json.loads((Path(storage) / "quickstart" / "summary.json").read_text())
    return {"launcher": launcher, "wall_s": round(wall, 1),
            "trial_time_s_mean": summary["trial_time_s"]["mean"],
            "train_samples_per_s": summary["train_samples_per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--trials", type=int, default=2)
    args = parser.parse_args()
    in_trial = run("in_trial", args.samples, args.trials)
    ray_train = run("ray_train", args.samples, args.trials)
    print(json.dumps({
        "in_trial": in_trial,
        "ray_train": ray_train,
        "ray_train_extra_s_per_trial": round(
            ray_train["trial_time_s_mean"] - in_trial["trial_time_s_mean"], 1),
        "trial_time_ratio_ray_train_over_in_trial": round(
            ray_train["trial_time_s_mean"] / in_trial["trial_time_s_mean"], 2),
    }, indent=2))


if __name__ == "__main__":
    main()
