"""Reports as files: for a comparison dir (`hpo compare`, `hpo report COMPARE_DIR`)
`comparison.json`, `report.md` and its plots, and the mean-over-seeds curves in its TensorBoard
logs; for a single run dir (`hpo report RUN_DIR`) `report/report.md` and its plots.

Each report is computed first (numbers in `analysis`, importance once per report), then drawn
(`plots`), then written and pushed once. No Ray here.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpo.core.errors import UserError
from hpo.core.rundir import (
    COMPARISON,
    CURVE,
    IMPORTANCE_PLOT,
    PARALLEL_PLOT,
    PLAN,
    REPORT,
    RUN_CURVE_PLOT,
    RUN_REPORT,
    SWEEP_COPY,
    TENSORBOARD,
    curves_plot,
)
from hpo.core.storage import StorageDir, write_atomically
from hpo.search.analysis import (
    AlgorithmRow,
    ArmResult,
    StrategyRow,
    default_target,
    importances,
    load_arms,
    strategy_rows,
    table,
    trials_study,
    verdict,
)
from hpo.search.compute import read_curve
from hpo.search.plots import (
    plot_curves,
    plot_front,
    plot_importance,
    plot_parallel_coordinates,
    seed_band,
)
from hpo.search.results import read_summary, read_trials
from hpo.search.sweepfile import load_run_sweep, load_sweep
from hpo.search.tensorboard import curve_tags


@dataclass
class Importance:
    """fANOVA importance over a set of trials, and the Optuna study it was computed from."""

    study: Any
    trials: int
    scores: dict[str, float]

    @classmethod
    def of(cls, trials: list[dict[str, Any]], space: dict[str, Any], mode: str) -> Importance:
        study = trials_study(trials, space, mode)
        return cls(study, len(trials), importances(study))

    def plot(self, directory: Path) -> list[str]:
        """The importance and parallel-coordinate plots it can draw; returns their names."""
        written = []
        if self.scores:
            plot_importance(self.scores, directory / IMPORTANCE_PLOT, trials=self.trials)
            written.append(IMPORTANCE_PLOT)
        if self.study.trials:
            plot_parallel_coordinates(self.study, directory / PARALLEL_PLOT)
            written.append(PARALLEL_PLOT)
        return written

    def section(self, pictures: list[str]) -> list[str]:
        """The report's importance section, in Markdown lines."""
        lines = [
            "## Hyperparameter importance",
            "",
            f"fANOVA (Optuna) over {self.trials} trials, each scored by its best evaluation "
            "(early-stopped trials included).",
            "",
        ]
        if self.scores:
            lines += ["| hyperparameter | importance |", "|---|---|"]
            lines += [f"| {name} | {value:.3f} |" for name, value in self.scores.items()]
        else:
            lines.append("Too few trials or searched hyperparameters to tell.")
        return [*lines, "", *(f"![{p}]({p})" for p in pictures), ""]


@dataclass
class Comparison:
    """The numbers of a comparison dir: its plan, finished arms, table and verdicts."""

    plan: dict[str, Any]
    arms: list[ArmResult]
    target: float
    rows: list[AlgorithmRow]
    verdicts: dict[str, str]

    @property
    def schedulers(self) -> list[str]:
        return list(self.verdicts)

    def curves(self, scheduler: str) -> dict[str, list[list]]:
        """Per algorithm, the curves of its seeds under one scheduler."""
        mine = [a for a in self.arms if a.scheduler == scheduler]
        return {
            algorithm: [a.curve for a in mine if a.algorithm == algorithm]
            for algorithm in dict.fromkeys(a.algorithm for a in mine)
        }


def read_plan(compare_dir: StorageDir) -> dict[str, Any]:
    path = compare_dir.local / PLAN
    if not path.is_file():
        raise UserError(f"{compare_dir} is not a comparison dir (it has no {PLAN})")
    return json.loads(path.read_text())


def compare_arms(compare_dir: StorageDir) -> Comparison:
    """Reads the finished arms of a comparison dir and computes its table and verdicts."""
    plan = read_plan(compare_dir)
    mode = plan["mode"]
    arms = [a for a in load_arms(compare_dir, plan) if a.curve]
    if not arms:
        raise UserError(f"{compare_dir}: no arm has finished yet")
    target = plan["target"] if plan["target"] is not None else default_target(arms, mode)
    rows = table(arms, mode, target)
    schedulers = dict.fromkeys(r.scheduler for r in rows)
    verdicts = {
        s: verdict([r for r in rows if r.scheduler == s], plan["metric"]) for s in schedulers
    }
    return Comparison(plan, arms, target, rows, verdicts)


def _plot_curves(comparison: Comparison, directory: Path) -> list[str]:
    plan, pictures = comparison.plan, []
    for scheduler in comparison.schedulers:
        picture = curves_plot(scheduler)
        plot_curves(
            comparison.curves(scheduler),
            directory / picture,
            metric=plan["metric"],
            samples_limit=plan["budget_samples"],
            title=f"{plan['name']}: best {plan['metric']} so far, {scheduler} "
            "(mean ± std over seeds)",
        )
        pictures.append(picture)
    return pictures


def _write_mean_curves(logdir: Path, comparison: Comparison) -> None:
    """TensorBoard: per algorithm, the mean over seeds in the section `<scheduler>/mean`."""
    from torch.utils.tensorboard import SummaryWriter

    xs = np.linspace(0, comparison.plan["budget_samples"], 100)
    for algorithm in dict.fromkeys(a.algorithm for a in comparison.arms):
        with SummaryWriter(str(logdir / algorithm)) as writer:
            for scheduler in comparison.schedulers:
                curves = comparison.curves(scheduler).get(algorithm)
                if not curves:
                    continue
                x, mean, _ = seed_band(curves, xs, "samples")
                tag = curve_tags(f"{scheduler}/mean", comparison.plan["metric"])[0]
                for step, value in zip(x, mean, strict=True):
                    writer.add_scalar(tag, float(value), int(step))


def _not_reached(value: float | None, digits: int = 0) -> str:
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
            f"{r.mean_rank:.2f} | {_not_reached(r.samples_to_target)} ({r.reached}/"
            f"{len(r.finals)}) | {_not_reached(r.seconds_to_target)} | {r.trials:.1f} | "
            f"{r.wall_s:.0f} |"
        )
    return lines


def _comparison_markdown(
    comparison: Comparison,
    importance: Importance,
    curve_pictures: list[str],
    importance_pictures: list[str],
    compare_dir: StorageDir,
) -> str:
    plan, metric = comparison.plan, comparison.plan["metric"]
    budget, examples = plan["budget_samples"], plan["train_examples"]
    target_origin = " (the worst arm's final best)." if plan["target"] is None else "."
    lines = [
        f"# Comparison: {plan['name']}",
        "",
        f"Model {plan['model']}, {examples:,} training examples, metric {metric} "
        f"({plan['mode']}). Every arm had the same budget: {budget:,} training samples "
        f"({budget / examples:.1f} epochs of the training set), counted over all its trials. "
        f"Target for 'to target': {comparison.target:.4f}{target_origin}",
        "",
        "## Results",
        "",
        *_table_lines(comparison.rows, metric),
        "",
        *comparison.verdicts.values(),
        "",
        "## Best so far against compute",
        "",
        *(f"![{p}]({p})" for p in curve_pictures),
        "",
        *importance.section(importance_pictures),
        "## Arms",
        "",
        "Every figure above comes from reports within the budget. Tune stops an arm after a "
        "report crosses it, so its trials train a little more (the overshoot), which counts "
        "for nothing:",
        "",
        "| arm | best within budget | at samples | samples trained | overshoot | wall s | trials |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {a.algorithm}-{a.scheduler}-seed{a.seed} | {a.final_best:.4f} | "
            f"{a.samples_counted:,} | {a.samples_trained:,} | "
            f"{max(0, a.samples_trained - budget):,} | {a.wall_s:.0f} | {len(a.trials)} |"
            for a in comparison.arms
        ),
        "",
        f"TensorBoard: `hpo tensorboard {compare_dir}`",
        "",
    ]
    return "\n".join(lines)


def _comparison_json(comparison: Comparison, importance: Importance) -> dict[str, Any]:
    plan = comparison.plan
    return {
        "name": plan["name"],
        "metric": plan["metric"],
        "mode": plan["mode"],
        "budget_samples": plan["budget_samples"],
        "target": comparison.target,
        "verdicts": comparison.verdicts,
        "importance": importance.scores,
        "rows": [{**asdict(r), "mean": r.mean, "std": r.std} for r in comparison.rows],
        "arms": [
            {
                "algorithm": a.algorithm,
                "scheduler": a.scheduler,
                "seed": a.seed,
                "final_best": a.final_best,
                "samples_counted": a.samples_counted,
                "samples_trained": a.samples_trained,
                "overshoot": max(0, a.samples_trained - plan["budget_samples"]),
                "wall_s": a.wall_s,
                "trials": len(a.trials),
            }
            for a in comparison.arms
        ],
    }


def write_comparison_report(compare_dir: StorageDir) -> dict[str, Any]:
    """Writes comparison.json, report.md, the PNGs and TensorBoard mean curves; returns the
    content of comparison.json."""
    started = time.time()
    comparison = compare_arms(compare_dir)
    sweep = load_sweep(compare_dir.local / SWEEP_COPY)
    all_trials = [t for a in comparison.arms for t in a.trials]
    importance = Importance.of(all_trials, sweep.space, comparison.plan["mode"])

    directory = compare_dir.local
    curve_pictures = _plot_curves(comparison, directory)
    importance_pictures = importance.plot(directory)
    _write_mean_curves(directory / TENSORBOARD, comparison)
    result = _comparison_json(comparison, importance)
    compare_dir.write_text(
        REPORT,
        _comparison_markdown(
            comparison, importance, curve_pictures, importance_pictures, compare_dir
        ),
    )
    compare_dir.write_text(COMPARISON, json.dumps(result, indent=2) + "\n")
    compare_dir.push(REPORT, COMPARISON, *curve_pictures, *importance_pictures)
    compare_dir.push(TENSORBOARD, since=started)
    return result


def _strategy_section(rows: list[StrategyRow], metric: str) -> list[str]:
    """The run report's table of fine-tuning strategies (a sweep that searched `strategy`)."""

    def cell(value: Any, form: str = "{}") -> str:
        return "" if value is None else form.format(value)

    lines = [
        "## Fine-tuning strategies",
        "",
        "Per strategy, its best trial: what it trained, and its checkpoint on disk (the weights "
        "the service loads; with the training state that resuming needs). Samples/s: the median "
        "over the strategy's trials.",
        "",
        f"| strategy | trials | best {metric} | trainable parameters | samples/s | weights MB "
        "| checkpoint MB |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.strategy} | {r.trials} | {cell(r.best, '{:.4f}')} | "
        f"{cell(r.trainable_params, '{:,}')} | {cell(r.samples_per_s)} | {cell(r.weights_mb)} | "
        f"{cell(r.checkpoint_mb)} |"
        for r in rows
    ]
    return [*lines, ""]


def _front_section(
    summary: dict[str, Any], trials: list[dict[str, Any]], directory: Path
) -> list[str]:
    """A multi-objective sweep's front: a plot per serving cost and the front's table."""
    metric, selection = summary["metric"], summary["selection"]
    names = [objective["metric"] for objective in summary["objectives"]]
    front = [point["trial_id"] for point in summary["pareto_front"]]
    lines = [
        "## Accuracy against serving cost",
        "",
        f"{len(front)} of {summary['num_trials']} trials are on the Pareto front of "
        f"{', '.join(names)}. Deployed ({selection['rule']}): {selection['reason']}.",
        "",
    ]
    for cost in names[1:]:
        points = [
            (t["trial_id"], t["best_metrics"][cost], t["best_metric"])
            for t in trials
            if cost in t["best_metrics"] and t["best_metric"] is not None
        ]
        picture = f"front_{cost}.png"
        plot_front(
            points, front, selection["trial_id"], directory / picture, cost=cost, metric=metric
        )
        lines += [f"![{picture}]({picture})", ""]
    lines += [
        f"| trial | {' | '.join(names)} | config |",
        "|---|" + "---|" * len(names) + "---|",
    ]
    for point in summary["pareto_front"]:
        trial = point["trial_id"]
        values = " | ".join(f"{point[name]:.4g}" for name in names)
        deployed = " (deployed)" if trial == selection["trial_id"] else ""
        lines.append(f"| {trial}{deployed} | {values} | `{json.dumps(point['config'])}` |")
    return [*lines, ""]


def _run_markdown(summary: dict[str, Any], curve_pictures: list[str], sections: list[str]) -> str:
    metric, best = summary["metric"], summary["best"]
    lines = [
        f"# Sweep: {summary['name']}",
        "",
        f"{summary['algorithm']} search, {summary['scheduler']} scheduler, "
        f"{summary['num_trials']} trials, {summary.get('train_samples', 0):,} training samples "
        f"in {summary['wall_s']:.0f} s.",
        "",
        "No trial produced a checkpoint."
        if best is None
        else f"Best {metric}: **{best['metric']:.4f}** (trial {best['trial_id']}, epoch "
        f"{best['epoch']}), config `{json.dumps(best['config'])}`.",
        "",
        *(f"![{p}]({p})" for p in curve_pictures),
        "",
        *sections,
    ]
    return "\n".join(lines)


def write_run_report(run: StorageDir) -> Path:
    """`hpo report RUN_DIR`: the best-so-far curve and importance plots of one sweep, in
    `<run_dir>/report/`; returns the report file (on this machine)."""
    summary = read_summary(run)
    if summary is None:
        raise UserError(f"{run}: no summary.json yet; is the sweep still running?")
    sweep = load_run_sweep(run)
    run.pull(CURVE)
    directory = run.local / RUN_REPORT
    directory.mkdir(exist_ok=True)
    curve = read_curve(run.local / CURVE)
    curve_pictures = []
    if curve:
        plot_curves(
            {summary["algorithm"]: [curve]},
            directory / RUN_CURVE_PLOT,
            metric=summary["metric"],
            title=f"{summary['name']}: best {summary['metric']} so far",
        )
        curve_pictures.append(RUN_CURVE_PLOT)
    trials = read_trials(run)
    sections = []
    if "pareto_front" in summary:
        sections += _front_section(summary, trials, directory)
    if "strategy" in sweep.space or sweep.train.strategy is not None:
        rows = strategy_rows(trials, sweep.train.strategy or "full", summary["mode"])
        sections += _strategy_section(rows, summary["metric"])
    importance = Importance.of(trials, sweep.space, summary["mode"])
    sections += importance.section(importance.plot(directory))
    report = directory / REPORT
    write_atomically(report, _run_markdown(summary, curve_pictures, sections))
    run.push(RUN_REPORT)
    return report
