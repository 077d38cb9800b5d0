"""Reports as files: `report.md` with PNG plots (matplotlib) for a comparison dir
(`hpo compare`) or a single run dir (`hpo report`), plus `comparison.json` with the table, and
the mean-over-seeds curves added to the comparison's TensorBoard logs."""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from search.analysis import (
    AlgorithmRow,
    ArmResult,
    best_so_far_at,
    default_target,
    fanova,
    importances,
    load_arms,
    table,
    trials_study,
    verdict,
)
from search.compute import CURVE, read_curve
from search.results import TRIALS_JSON, read_summary
from search.storage import StorageDir
from search.sweep import load_sweep
from search.tensorboard import TENSORBOARD, curve_tags
from trainables.errors import UserError

COMPARISON = "comparison.json"
REPORT = "report.md"
RUN_REPORT = "report"
"""The folder of a run dir where `hpo report` writes."""
AXES = {"samples": "training samples (all trials)", "seconds": "wall time (s)"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _seed_band(curves: list[list], xs: np.ndarray, axis: str) -> tuple[np.ndarray, ...]:
    """Mean and standard deviation over seeds where every seed has a value."""
    ys = np.array([best_so_far_at(curve, xs, axis) for curve in curves])
    defined = ~np.isnan(ys).any(axis=0)
    ys = ys[:, defined]
    return xs[defined], ys.mean(axis=0), ys.std(axis=0)


def plot_curves(
    curves: dict[str, list[list]], path: Path, *, metric: str, title: str,
    samples_limit: int | None = None,
) -> None:
    """Best so far against training samples and against wall time: per label, the mean over
    its curves (seeds) with a band of one standard deviation."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, ax in zip(AXES, axes):
        ends = [curve[-1] for runs in curves.values() for curve in runs if curve]
        limit = max(getattr(p, axis) for p in ends) if ends else 1.0
        if axis == "samples" and samples_limit:
            limit = samples_limit
        xs = np.linspace(0, limit, 400)
        for label, runs in curves.items():
            runs = [c for c in runs if c]
            if not runs:
                continue
            x, mean, std = _seed_band(runs, xs, axis)
            line = ax.plot(x, mean, label=f"{label} ({len(runs)} seed{'s' * (len(runs) > 1)})")
            ax.fill_between(x, mean - std, mean + std, color=line[0].get_color(), alpha=0.2)
        ax.set_xlabel(AXES[axis])
        ax.set_ylabel(f"best {metric} so far")
        ax.grid(alpha=0.3)
        ax.set_xlim(left=0)
        ax.legend(loc="best", fontsize=9)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_study(study, directory: Path) -> list[str]:
    """Optuna's importance and parallel-coordinate plots; returns the files written."""
    from optuna.visualization import matplotlib as optuna_plots

    plt = _pyplot()
    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        evaluator = fanova(study)
        if evaluator is not None:
            ax = optuna_plots.plot_param_importances(study, evaluator=evaluator)
            ax.figure.savefig(directory / "importance.png", dpi=110, bbox_inches="tight")
            plt.close(ax.figure)
            written.append("importance.png")
        if study.trials:
            ax = optuna_plots.plot_parallel_coordinate(study)
            ax.figure.set_size_inches(11, 5)
            ax.figure.savefig(directory / "parallel_coordinates.png", dpi=110, bbox_inches="tight")
            plt.close(ax.figure)
            written.append("parallel_coordinates.png")
    return written


def _importance_section(study, trials: int, pictures: list[str]) -> list[str]:
    scores = importances(study)
    lines = [
        "## Hyperparameter importance",
        "",
        f"fANOVA (Optuna) over {trials} trials, each scored by its best evaluation "
        "(early-stopped trials included).",
        "",
    ]
    if scores:
        lines += ["| hyperparameter | importance |", "|---|---|"]
        lines += [f"| {name} | {value:.3f} |" for name, value in scores.items()]
    else:
        lines.append("Too few trials or searched hyperparameters to tell.")
    return lines + [""] + [f"![{p}]({p})" for p in pictures] + [""]


def _fmt(value: float | None, digits: int = 0) -> str:
    return "not reached" if value is None else f"{value:,.{digits}f}"


def _table_lines(rows: list[AlgorithmRow], metric: str) -> list[str]:
    lines = [
        f"| scheduler | algorithm | best {metric} (mean ± std) | seeds | mean rank | "
        "samples to target | seconds to target | trials | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.scheduler} | {r.algorithm} | {r.mean:.4f} ± {r.std:.4f} | {len(r.finals)} | "
            f"{r.mean_rank:.2f} | {_fmt(r.samples_to_target)} ({r.reached}/{len(r.finals)}) | "
            f"{_fmt(r.seconds_to_target)} | {r.trials:.1f} | {r.wall_s:.0f} |"
        )
    return lines


def _write_mean_curves(logdir: Path, arms: list[ArmResult], metric: str, budget: int) -> None:
    """TensorBoard: per algorithm, the mean over seeds in the section `<scheduler>/mean`."""
    from torch.utils.tensorboard import SummaryWriter

    xs = np.linspace(0, budget, 100)
    for algorithm in dict.fromkeys(a.algorithm for a in arms):
        with SummaryWriter(str(logdir / algorithm)) as writer:
            for scheduler in dict.fromkeys(a.scheduler for a in arms):
                curves = [a.curve for a in arms
                          if (a.algorithm, a.scheduler) == (algorithm, scheduler) and a.curve]
                if not curves:
                    continue
                x, mean, _ = _seed_band(curves, xs, "samples")
                tag = curve_tags(f"{scheduler}/mean", metric)[0]
                for step, value in zip(x, mean):
                    writer.add_scalar(tag, float(value), int(step))


def write_comparison_report(compare_dir: StorageDir) -> dict[str, Any]:
    """Writes comparison.json, report.md, the PNGs and TensorBoard mean curves; returns the
    content of comparison.json."""
    from search.compare import PLAN
    from search.runner import SWEEP_COPY

    started = time.time()
    plan_path = compare_dir.local / PLAN
    if not plan_path.is_file():
        raise UserError(f"{compare_dir} is not a comparison dir (it has no {PLAN})")
    plan = json.loads(plan_path.read_text())
    metric, mode, budget = plan["metric"], plan["mode"], plan["budget_samples"]
    arms = [a for a in load_arms(compare_dir, plan) if a.curve]
    if not arms:
        raise UserError(f"{compare_dir}: no arm has finished yet")
    target = plan["target"] if plan["target"] is not None else default_target(arms, mode)
    rows = table(arms, mode, target)
    schedulers = list(dict.fromkeys(r.scheduler for r in rows))
    verdicts = {s: verdict([r for r in rows if r.scheduler == s], metric) for s in schedulers}

    pictures = []
    for scheduler in schedulers:
        curves = {
            algorithm: [a.curve for a in arms
                        if (a.algorithm, a.scheduler) == (algorithm, scheduler)]
            for algorithm in dict.fromkeys(a.algorithm for a in arms if a.scheduler == scheduler)
        }
        picture = f"curves_{scheduler}.png"
        plot_curves(curves, compare_dir.local / picture, metric=metric, samples_limit=budget,
                    title=f"{plan['name']}: best {metric} so far, {scheduler} "
                          "(mean ± std over seeds)")
        pictures.append(picture)
    _write_mean_curves(compare_dir.local / TENSORBOARD, arms, metric, budget)

    sweep = load_sweep(compare_dir.local / SWEEP_COPY)
    all_trials = [t for a in arms for t in a.trials]
    study = trials_study(all_trials, sweep.space, mode)
    study_pictures = plot_study(study, compare_dir.local)

    lines = [
        f"# Comparison: {plan['name']}",
        "",
        f"Model {plan['model']}, {plan['train_examples']:,} training examples, metric {metric} "
        f"({mode}). Every arm had the same budget: {budget:,} training samples "
        f"({budget / plan['train_examples']:.1f} epochs of the training set), counted over all "
        f"its trials. Target for 'to target': {target:.4f}"
        + (" (the worst arm's final best)." if plan["target"] is None else "."),
        "",
        "## Results",
        "",
        *_table_lines(rows, metric),
        "",
        *(verdicts[s] for s in schedulers),
        "",
        "## Best so far against compute",
        "",
        *(f"![{p}]({p})" for p in pictures),
        "",
        *_importance_section(study, len(all_trials), study_pictures),
        "## Arms",
        "",
        "| arm | final best | samples used | wall s | trials |",
        "|---|---|---|---|---|",
        *(f"| {a.algorithm}-{a.scheduler}-seed{a.seed} | {a.final_best:.4f} | "
          f"{a.samples_used:,} | {a.wall_s:.0f} | {len(a.trials)} |" for a in arms),
        "",
        f"TensorBoard: `hpo tensorboard {compare_dir}`",
        "",
    ]
    (compare_dir.local / REPORT).write_text("\n".join(lines))
    comparison = {
        "name": plan["name"], "metric": metric, "mode": mode, "budget_samples": budget,
        "target": target, "verdicts": verdicts, "importance": importances(study),
        "rows": [{**asdict(r), "mean": r.mean, "std": r.std} for r in rows],
        "arms": [{"algorithm": a.algorithm, "scheduler": a.scheduler, "seed": a.seed,
                  "final_best": a.final_best, "samples_used": a.samples_used,
                  "wall_s": a.wall_s, "trials": len(a.trials)} for a in arms],
    }
    (compare_dir.local / COMPARISON).write_text(json.dumps(comparison, indent=2) + "\n")
    compare_dir.push(REPORT, COMPARISON, *pictures, *study_pictures)
    compare_dir.push(TENSORBOARD, since=started)
    return comparison


def write_run_report(run: StorageDir) -> Path:
    """`hpo report RUN_DIR`: the best-so-far curve and importance plots of one sweep, in
    `<run_dir>/report/`; returns the report file (on this machine)."""
    from search.runner import load_run_sweep

    summary = read_summary(run)
    if summary is None:
        raise UserError(f"{run}: no summary.json yet; is the sweep still running?")
    sweep = load_run_sweep(run)
    run.pull(CURVE, TRIALS_JSON)
    metric, mode = summary["metric"], summary["mode"]
    directory = run.local / RUN_REPORT
    directory.mkdir(exist_ok=True)
    curve = read_curve(run.local / CURVE)
    pictures = []
    if curve:
        plot_curves({summary["algorithm"]: [curve]}, directory / "curve.png", metric=metric,
                    title=f"{summary['name']}: best {metric} so far")
        pictures.append("curve.png")
    trials = json.loads((run.local / TRIALS_JSON).read_text())
    study = trials_study(trials, sweep.space, mode)
    best = summary["best"]
    lines = [
        f"# Sweep: {summary['name']}",
        "",
        f"{summary['algorithm']} search, {summary['scheduler']} scheduler, "
        f"{summary['num_trials']} trials, {summary.get('train_samples', 0):,} training samples in "
        f"{summary['wall_s']:.0f} s.",
        "",
        "No trial produced a checkpoint." if best is None else
        f"Best {metric}: **{best['metric']:.4f}** (trial {best['trial_id']}, epoch "
        f"{best['epoch']}), config `{json.dumps(best['config'])}`.",
        "",
        *(f"![{p}]({p})" for p in pictures),
        "",
        *_importance_section(study, len(trials), plot_study(study, directory)),
    ]
    report = directory / REPORT
    report.write_text("\n".join(lines))
    run.push(RUN_REPORT)
    return report
