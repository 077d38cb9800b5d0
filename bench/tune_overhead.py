"""What hpo's runner costs on top of Ray Tune: trials that train nothing (each reports once and
returns), run through `hpo.search.runner.run_prepared` with every callback hpo adds (console
progress, TensorBoard, curve, disk guard, the results written at the end) and through a raw
`tune.Tuner` with the same searcher, scheduler, concurrency and trial resources, on one Ray,
alternating sides for `--rounds` rounds.

    python bench/tune_overhead.py [--trials 200] [--rounds 3]   # bench/results/tune_overhead.json

Only the trainable differs from a real sweep (the runner's `make_trainable` is swapped for the
no-op one), so the figure is the whole runner's overhead per trial: Tune's own trial start and
stop, which both sides pay, and what hpo adds.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path

import ray
from ray import tune
from results import spread, write_result
from rich.console import Console

from hpo.search import runner
from hpo.search.prepare import prepare
from hpo.search.sweepfile import load_sweep

REPO = Path(__file__).resolve().parents[1]
GOAL_RATIO = 1.2
CONCURRENT = 4


def noop_trial(config: dict) -> None:
    """A trial that trains nothing: one report at the end of its only epoch."""
    tune.report(
        {
            "accuracy": 0.5 + config["learning_rate"] * 1000,
            "loss": 0.5,
            "epoch": 1.0,
            "step": 1,
            "samples": 16,
            "learning_rate": config["learning_rate"],
            "train_samples_per_s": 100.0,
            "train_loss": 0.5,
        }
    )


def noop_trainable(job, data):
    return tune.with_resources(noop_trial, {"CPU": 1})


def _sweep(trials: int):
    overrides = [
        f"search.num_samples={trials}",
        f"search.max_concurrent={CONCURRENT}",
        "search.algorithm=random",  # TPE's own cost grows with the trials: it would dominate
        "data.max_train_samples=64",
        "train.evals_per_epoch=1",
        "train.cpus_per_worker=1",
        "scheduler={name: asha, max_epochs: 1, grace_period: 1}",
    ]
    return load_sweep(REPO / "examples" / "quickstart.yaml", overrides)


def run_hpo(sweep, prepared, storage: str) -> float:
    runner.make_trainable = noop_trainable
    sweep = sweep.model_copy(update={"storage": storage})
    started = time.perf_counter()
    runner.run_prepared(
        sweep,
        prepared,
        runner.new_run_dir(sweep),
        embedded=True,
        console=Console(file=io.StringIO()),
    )
    return time.perf_counter() - started


def run_raw(sweep, storage: str) -> float:
    tuner = tune.Tuner(
        noop_trainable(None, None),
        param_space=runner.param_space(sweep),
        tune_config=runner.tune_config(sweep),
        run_config=tune.RunConfig(name="raw", storage_path=storage, verbose=0),
    )
    started = time.perf_counter()
    tuner.fit()
    return time.perf_counter() - started


def profile_hpo(sweep, prepared, storage: str) -> str:
    """Where the driver's time goes in one hpo run: the top functions by cumulative time."""
    profiler = cProfile.Profile()
    profiler.enable()
    run_hpo(sweep, prepared, storage)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one hpo run")
    args = parser.parse_args()
    sweep = _sweep(args.trials)
    prepared = prepare(sweep)
    ray.init(num_cpus=CONCURRENT, include_dashboard=False, log_to_driver=False)
    ours, raw = [], []
    with tempfile.TemporaryDirectory() as storage:
        for round_ in range(args.rounds):
            # alternate which side goes first: the machine's noise drifts
            sides = [("hpo", ours), ("raw", raw)]
            for side, seconds in sides if round_ % 2 == 0 else reversed(sides):
                folder = f"{storage}/{side}-{round_}"
                took = run_hpo(sweep, prepared, folder) if side == "hpo" else run_raw(sweep, folder)
                seconds.append(took)
                print(f"round {round_ + 1} {side}: {took:.1f} s", flush=True)
        if args.profile:
            print(profile_hpo(sweep, prepared, f"{storage}/profile"))
    ratios = [a / b for a, b in zip(ours, raw, strict=True)]
    ratio = spread(ratios)
    per_trial_ms = [(a - b) / args.trials * 1000 for a, b in zip(ours, raw, strict=True)]
    path = write_result(
        "tune_overhead",
        goal=f"≤ {GOAL_RATIO}× raw Tune's wall time ({args.trials} no-op trials, "
        f"{CONCURRENT} at once)",
        met=ratio["median"] <= GOAL_RATIO,
        ratio=ratio["median"],
        figures={
            "trials": args.trials,
            "max_concurrent": CONCURRENT,
            "searcher": sweep.search.algorithm,
            "scheduler": sweep.scheduler.name,
            "hpo_wall_s": spread(ours),
            "raw_tune_wall_s": spread(raw),
            "ratio_hpo_over_raw": ratio,
            "extra_ms_per_trial": spread(per_trial_ms),
        },
        summary=f"{ratio['median']:.2f}× (spread {ratio['min']:.2f}-{ratio['max']:.2f}); "
        f"{spread(per_trial_ms)['median']:.0f} ms more per trial",
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
