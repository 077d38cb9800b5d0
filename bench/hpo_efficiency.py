"""How much training early stopping saves: grid search with FIFO on its full budget against
random, TPE and GP with FIFO and TPE with ASHA and with Hyperband, each on a third of grid's
budget, every arm with the same seeds, all through `hpo compare` on the sweep in
`bench/hpo_efficiency.yaml` (MiniLM-L6, SST-2).

    python bench/hpo_efficiency.py [--seeds 3] [--keep DIR]   # bench/results/hpo_efficiency.json

Goal: the best early-stopping arm (its best validation accuracy, mean over seeds) within 0.5
point of grid's, on at most a third of grid's training samples. As in every comparison, an
arm's figure is the best it reached within its budget; what trials in flight trained past it
is reported as the overshoot. Accuracy and samples, not time: the machine's noise does not
enter. Three comparisons, because grid's budget differs from the others':

    grid x fifo                  budget G   (the grid once: G = grid points x max_epochs epochs)
    random, tpe, gp x fifo       budget G/3
    tpe x asha, hyperband        budget G/3

It also replays the sweep's halving on grid's full curves (every subset of as many trials as
the early-stopping budget starts, per seed), once comparing trials at the rungs on the sweep's
metric and once on validation loss (`scheduler.metric: loss`): what the rung decisions are
worth, free of the searchers' draws.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from quickstart_runs import REPO
from results import QUICK, write_result

from hpo.core.storage import StorageDir
from hpo.search.report import compare_arms
from hpo.search.schedulers import SchedulerInputs, SuccessiveHalvingConfig, halving_rungs
from hpo.search.space import as_grid
from hpo.search.sweep import Sweep
from hpo.search.sweepfile import load_sweep
from hpo.trainables.metrics import mode_of

SWEEP = REPO / "bench" / "hpo_efficiency.yaml"
GOAL_POINTS = 0.5
GOAL_FRACTION = 1 / 3
EARLY_STOPPING = ("asha", "hyperband")
QUICK_SETS = [  # a 2-point grid of 160 sentences, one arm per comparison after grid's: checks
    # the harness (an arm costs ~30 s here, most of it starting trials), measures nothing
    "data.max_train_samples=160",
    "data.max_eval_samples=100",
    "space.warmup_ratio=0.0",
    "space.batch_size=16",
    "compare.grid_points=2",
]

# (comparison, algorithms, schedulers, fraction of grid's budget)
COMPARISONS = [
    ("grid", "grid", "fifo", 1.0),
    ("fifo", "random" if QUICK else "random,tpe,gp", "fifo", GOAL_FRACTION),
    ("early-stopping", "tpe", "hyperband" if QUICK else "asha,hyperband", GOAL_FRACTION),
]


def grid_epochs(sweep: Sweep) -> float:
    """Grid's budget in epochs: every grid point trained for max_epochs."""
    grid = as_grid(sweep.space, sweep.compare.grid_points)
    points = math.prod(len(dim.args) for dim in grid.values())
    return points * sweep.scheduler.max_epochs


def space_searched(sweep: Sweep) -> dict[str, str]:
    """The sweep's space as text (`loguniform(1e-05, 0.001)`), to tell runs of past spaces apart."""
    return {name: f"{dim.kind}{dim.args}" for name, dim in sweep.space.items()}


def early_stopping_settings(sweep: Sweep) -> dict:
    """The sweep's scheduler section (the early-stopping arms share it), to tell runs apart."""
    return sweep.scheduler.model_dump(exclude_none=True)


def run_comparison(
    name: str, algorithms: str, schedulers: str, epochs: float, seeds: int, sets: list[str]
) -> Path:
    """One `hpo compare` in a subprocess; returns its comparison dir."""
    command = [sys.executable, "-m", "hpo.cli", "compare", str(SWEEP)]
    command += ["--algorithms", algorithms, "--schedulers", schedulers]
    command += ["--seeds", str(seeds), "--budget", f"{epochs:g} epochs"]
    for assignment in [*sets, f"name=efficiency-{name}"]:
        command += ["--set", assignment]
    print("$", " ".join(command[2:]), flush=True)
    subprocess.run(command, cwd=REPO, check=True)
    storage = next(s.split("=", 1)[1] for s in sets if s.startswith("storage="))
    return Path(storage) / f"efficiency-{name}-compare"


def arm_figures(compare_dir: Path) -> list[dict]:
    """Per algorithm x scheduler: each seed's best within the budget and what it trained."""
    comparison = compare_arms(StorageDir.at(str(compare_dir)))
    budget = comparison.plan["budget_samples"]
    groups: dict[tuple[str, str], list] = {}
    for arm in comparison.arms:
        groups.setdefault((arm.algorithm, arm.scheduler), []).append(arm)
    return [
        {
            "algorithm": algorithm,
            "scheduler": scheduler,
            "budget_samples": budget,
            "best_per_seed": [round(a.final_best, 4) for a in arms],
            "mean_best": round(statistics.mean(a.final_best for a in arms), 4),
            "samples_counted_per_seed": [a.samples_counted for a in arms],
            "max_samples_counted": max(a.samples_counted for a in arms),
            "overshoot_per_seed": [a.samples_trained - budget for a in arms],
            "trials_per_seed": [len(a.trials) for a in arms],
        }
        for (algorithm, scheduler), arms in groups.items()
    ]


def halving_replays(grid_dir: Path, sweep: Sweep, trials: int) -> dict:
    """The sweep's halving (its grace period and reduction factor, synchronous) replayed on
    grid's full curves, comparing trials at the rungs on the sweep's metric, then on loss: over
    every `trials`-trial subset of each seed's grid, the mean of the best value the replay saw
    (stopped trials' reports up to their stop included)."""
    from hpo.search.tune_results import snapshots_on_disk

    scheduler = sweep.scheduler
    inputs = SchedulerInputs(sweep.train.evals_per_epoch, trials)
    grace, rf = scheduler.grace_reports(inputs), scheduler.reduction_factor
    rungs = [round(r) for r in halving_rungs(inputs.reports(scheduler.max_epochs), grace, rf)]
    rungs = rungs[:-1]  # the last is max_epochs
    best_per_seed: dict[str, list[float]] = {sweep.metric: [], "loss": []}
    for arm in sorted((grid_dir / "arms").iterdir()):
        curves = [trial.rows for trial in snapshots_on_disk(StorageDir.at(str(arm)))]
        for ranked_on, bests in best_per_seed.items():
            replays = [
                _halving_best(subset, rungs, rf, ranked_on, sweep.metric)
                for subset in itertools.combinations(curves, min(trials, len(curves)))
            ]
            bests.append(round(statistics.mean(replays), 4))
    return {"trials": trials, "rungs": rungs, "best_per_seed_ranked_on": best_per_seed}


def _halving_best(
    curves: list[list[dict]], rungs: list[int], rf: float, ranked_on: str, metric: str
) -> float:
    """The best `metric` that halving `curves` at `rungs` on `ranked_on` would have seen."""
    alive, seen = list(curves), []
    for rung in rungs:
        ranked = sorted(alive, key=lambda rows: _larger_is_better(ranked_on, rows[rung - 1]))
        kept = max(1, int(len(ranked) / rf))
        alive, stopped = ranked[-kept:], ranked[:-kept]
        seen += [rows[:rung] for rows in stopped]
    values = [row[metric] for rows in seen + alive for row in rows]
    return max(values) if mode_of(metric) == "max" else min(values)


def halving_trials(sweep: Sweep, epochs: float) -> int:
    """How many trials the sweep's halving starts on `epochs` epochs of training."""
    halving = SuccessiveHalvingConfig(
        name="successive_halving",
        max_epochs=sweep.scheduler.max_epochs,
        grace_period=sweep.scheduler.grace_period,
        reduction_factor=sweep.scheduler.reduction_factor,
    )
    inputs = SchedulerInputs(sweep.train.evals_per_epoch, 0)
    return halving.trials_within(inputs.reports(epochs), inputs)


def _larger_is_better(metric: str, row: dict) -> float:
    return row[metric] if mode_of(metric) == "max" else -row[metric]


def verdict(arms: list[dict]) -> tuple[bool, dict, dict, float]:
    """Met or not, grid's figures, the best early-stopping arm's, and its samples as a fraction
    of grid's."""
    grid = next(a for a in arms if a["algorithm"] == "grid")
    early = [a for a in arms if a["scheduler"] in EARLY_STOPPING]
    best = max(early, key=lambda a: a["mean_best"])
    fraction = best["max_samples_counted"] / grid["budget_samples"]
    close = best["mean_best"] >= grid["mean_best"] - GOAL_POINTS / 100
    return close and fraction <= GOAL_FRACTION + 1e-9, grid, best, fraction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=1 if QUICK else 3)
    parser.add_argument("--keep", help="keep the comparison dirs here (default: a temp folder)")
    parser.add_argument(
        "--rescore",
        metavar="DIR",
        help="recompute the figures from the comparison dirs a run kept in DIR, training nothing",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        storage = args.keep or scratch
        sets = [*(QUICK_SETS if QUICK else []), f"storage={storage}"]
        sweep = load_sweep(SWEEP, sets)
        full = grid_epochs(sweep)
        arms, compare_dirs = [], {}
        for name, algorithms, schedulers, fraction in COMPARISONS:
            if args.rescore:
                compare_dirs[name] = Path(args.rescore) / f"efficiency-{name}-compare"
            else:
                compare_dirs[name] = run_comparison(
                    name, algorithms, schedulers, full * fraction, args.seeds, sets
                )
            arms += arm_figures(compare_dirs[name])
        replays = halving_replays(
            compare_dirs["grid"], sweep, halving_trials(sweep, full * GOAL_FRACTION)
        )
    met, grid, best, fraction = verdict(arms)
    gap = (grid["mean_best"] - best["mean_best"]) * 100
    behind = f"{gap:.2f} points behind" if gap > 0 else f"{-gap:.2f} points ahead"
    figures = {
        "grid_epochs": full,
        "space": space_searched(sweep),
        "scheduler": early_stopping_settings(sweep),
        "halving_replays": replays,
        "seeds": args.seeds,
        "overrides": sets[:-1],
        "arms": arms,
    }
    print(figures)
    write_result(
        "hpo_efficiency",
        goal=f"best early-stopping arm within {GOAL_POINTS} point of grid's best on "
        f"<= 1/3 of grid's training samples ({args.seeds} seeds)",
        met=met,
        ratio=round(fraction, 3),
        figures=figures,
        summary=f"{best['algorithm']}+{best['scheduler']} {best['mean_best']:.4f} vs grid "
        f"{grid['mean_best']:.4f} ({behind}) on {fraction:.2f}x grid's samples "
        f"(mean of {args.seeds} seeds)",
    )


if __name__ == "__main__":
    main()
