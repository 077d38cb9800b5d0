"""`hpo run examples/quickstart.yaml` against `Trainer.hyperparameter_search(backend="optuna")`
on the same budget (4 trials x the same 2,000 SST-2 sentences x 1 epoch), run one after the
other in this session, so both see the same (noisy, shared) machine.

    python bench/quickstart_vs_trainer.py [--rounds 3]   # bench/results/quickstart_vs_peer.json

Prints each side's whole-command wall time and best validation accuracy, and the time ratio;
alternates which side goes first.
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
from results import spread, write_result

GOAL_RATIO = 0.6


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
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    ours, theirs = [], []
    for round_ in range(rounds):
        for side in ("hpo", "trainer") if round_ % 2 == 0 else ("trainer", "hpo"):
            if side == "hpo":
                with tempfile.TemporaryDirectory() as storage:
                    ours.append(run_hpo(storage))
            else:
                theirs.append(run_baseline())
        print(json.dumps({"round": round_ + 1, "hpo": ours[-1], "trainer": theirs[-1]}), flush=True)
    ratios = [a["wall_s"] / b["wall_s"] for a, b in zip(ours, theirs, strict=True)]
    ratio = spread(ratios)
    accuracy = {
        "hpo": spread([r["best_accuracy"] for r in ours]),
        "trainer": spread([r["best_accuracy"] for r in theirs]),
    }
    path = write_result(
        "quickstart_vs_peer",
        goal=f"≤ {GOAL_RATIO}× the wall time of Trainer.hyperparameter_search (Optuna, same 4 "
        "trials, data, epochs) at ≥ its accuracy",
        met=ratio["median"] <= GOAL_RATIO
        and accuracy["hpo"]["median"] >= accuracy["trainer"]["median"],
        ratio=ratio["median"],
        figures={
            "hpo_wall_s": spread([r["wall_s"] for r in ours]),
            "trainer_wall_s": spread([r["wall_s"] for r in theirs]),
            "ratio_hpo_over_trainer": ratio,
            "best_accuracy": accuracy,
            "runs": {"hpo": ours, "trainer": theirs},
        },
        summary=f"{ratio['median']:.2f}× the peer's wall time ({ratio['min']:.2f}-"
        f"{ratio['max']:.2f}); accuracy {accuracy['hpo']['median']:.3f} vs "
        f"{accuracy['trainer']['median']:.3f}",
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
