"""What a Ray Train worker group costs per trial: the quickstart's model and data, shrunk to
short trials, run once with `launcher: in_trial` and once with `launcher: ray_train` (1 worker).

    python bench/launcher_overhead.py [--samples 500] [--trials 2]

Prints per-trial seconds (Tune's time_total_s, from trial start to its last report) and the
whole command's wall time for each launcher, and the difference per trial.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from quickstart_runs import run_quickstart, short_trials


def run(launcher: str, samples: int, trials: int) -> dict:
    with tempfile.TemporaryDirectory() as storage:
        overrides = {**short_trials(samples, trials), "train.launcher": launcher}
        wall, _ = run_quickstart(storage, overrides)
        summary = json.loads((Path(storage) / "quickstart" / "summary.json").read_text())
    return {
        "launcher": launcher,
        "wall_s": round(wall, 1),
        "trial_time_s_mean": summary["trial_time_s"]["mean"],
        "train_samples_per_s": summary["train_samples_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--trials", type=int, default=2)
    args = parser.parse_args()
    in_trial = run("in_trial", args.samples, args.trials)
    ray_train = run("ray_train", args.samples, args.trials)
    print(
        json.dumps(
            {
                "in_trial": in_trial,
                "ray_train": ray_train,
                "ray_train_extra_s_per_trial": round(
                    ray_train["trial_time_s_mean"] - in_trial["trial_time_s_mean"], 1
                ),
                "trial_time_ratio_ray_train_over_in_trial": round(
                    ray_train["trial_time_s_mean"] / in_trial["trial_time_s_mean"], 2
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
