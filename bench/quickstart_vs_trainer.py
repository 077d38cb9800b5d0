"""`hpo run examples/quickstart.yaml` against `Trainer.hyperparameter_search(backend="optuna")`
on the same budget (4 trials x the same 2,000 SST-2 sentences x 1 epoch), run one after the
other in this session, so both see the same (noisy, shared) machine.

    python bench/quickstart_vs_trainer.py [--rounds N]

Prints each side's whole-command wall time and best validation accuracy, and the time ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quickstart_runs import REPO, run_quickstart


def run_hpo(storage: str) -> dict:
    wall, _ = run_quickstart(storage)
    summary = json.loads((Path(storage) / "quickstart" / "summary.json").read_text())
    return {
        "tool": "hpo run examples/quickstart.yaml",
        "wall_s": round(wall, 1),
        "best_accuracy": round(summary["best"]["metric"], 4),
        "trial_states": summary["trial_states"],
    }


def run_baseline() -> dict:
    started = time.perf_counter()
    command = [sys.executable, "bench/baseline_trainer_search.py"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    wall, stdout = time.perf_counter() - started, done.stdout
    result = json.loads(stdout.strip().splitlines()[-1])
    return {**result, "wall_s": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=1)
    rounds = parser.parse_args().rounds
    for round_ in range(rounds):
        with tempfile.TemporaryDirectory() as storage:
            ours = run_hpo(storage)
        baseline = run_baseline()
        print(
            json.dumps(
                {
                    "round": round_ + 1,
                    "hpo": ours,
                    "trainer_search": baseline,
                    "wall_ratio_hpo_over_trainer": round(ours["wall_s"] / baseline["wall_s"], 3),
                },
                indent=2,
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
