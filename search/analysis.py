"""The numbers of a comparison: best-so-far curves on a common axis, the final best of every
algorithm over seeds, compute to reach a target, ranks, whether the winner's lead exceeds the
seed-to-seed spread, and hyperparameter importance; of a run, its fine-tuning strategies.
Reading finished arms and checkpoint sizes is the only file access; plots are in `plots`, files
in `report`. No Ray here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpo.core.rundir import CURVE, TRAINING_STATE
from hpo.core.storage import StorageDir
from hpo.search.compute import CurvePoint, read_curve, within_budget
from hpo.search.results import better, read_summary, read_trials
from hpo.search.space import Dimension, to_optuna_distributions


@dataclass
class ArmResult:
    """One finished arm: its best-so-far curve within the budget, what it trained in all
    (the budget and the overshoot past it) and its trials."""

    algorithm: str
    scheduler: str
    seed: int
    curve: list[CurvePoint]
    samples_trained: int
    wall_s: float
    trials: list[dict[str, Any]]

    @property
    def final_best(self) -> float | None:
        return self.curve[-1].best if self.curve else None

    @property
    def samples_counted(self) -> int:
        """The compute behind `final_best`: at most the budget."""
        return self.curve[-1].samples if self.curve else 0


def load_arms(compare_dir: StorageDir, plan: dict[str, Any]) -> list[ArmResult]:
    """Every arm of the plan that finished (has a summary.json)."""
    arms = []
    for arm in plan["arms"]:
        run = compare_dir.child(*arm["run_dir"].split("/"))
        summary = read_summary(run)
        if summary is None:
            continue
        run.pull(CURVE)
        points = read_curve(run.local / CURVE)
        arms.append(
            ArmResult(
                algorithm=arm["algorithm"],
                scheduler=arm["scheduler"],
                seed=arm["seed"],
                curve=within_budget(points, plan["budget_samples"]),
                samples_trained=points[-1].samples if points else 0,
                wall_s=summary["wall_s"],
                trials=read_trials(run),
            )
        )
    return arms


def best_so_far_at(curve: list[CurvePoint], xs: np.ndarray, axis: str) -> np.ndarray:
    """The best-so-far step function sampled at `xs` (NaN before the first evaluation);
    `axis` is "samples" or "seconds"."""
    at = np.array([getattr(p, axis) for p in curve], dtype=float)
    best = np.array([p.best for p in curve], dtype=float)
    index = np.searchsorted(at, xs, side="right") - 1
    return np.where(index >= 0, best[np.clip(index, 0, None)], np.nan)


def reach(curve: list[CurvePoint], target: float, mode: str) -> CurvePoint | None:
    """The first point whose best so far reaches the target."""
    for point in curve:
        if point.best == target or better(point.best, target, mode):
            return point
    return None


@dataclass
class AlgorithmRow:
    """One algorithm under one scheduler, over its seeds: a row of the comparison table."""

    scheduler: str
    algorithm: str
    finals: list[float]
    mean_rank: float
    samples_to_target: float | None  # mean over the seeds that reached it
    seconds_to_target: float | None
    reached: int
    wall_s: float
    trials: float

    @property
    def mean(self) -> float:
        return float(np.mean(self.finals))

    @property
    def std(self) -> float:
        return float(np.std(self.finals, ddof=1)) if len(self.finals) > 1 else 0.0


def default_target(arms: list[ArmResult], mode: str) -> float:
    """The worst arm's final best: a value that every arm reached."""
    finals = [a.final_best for a in arms if a.final_best is not None]
    return min(finals) if mode == "max" else max(finals)


def _ranks(arms: list[ArmResult], mode: str) -> dict[tuple[str, str, int], float]:
    """Rank of each arm among the algorithms with the same scheduler and seed (1 = best)."""
    from scipy.stats import rankdata

    ranks: dict[tuple[str, str, int], float] = {}
    groups = {(a.scheduler, a.seed) for a in arms}
    for scheduler, seed in groups:
        group = [a for a in arms if (a.scheduler, a.seed) == (scheduler, seed) and a.curve]
        sign = -1.0 if mode == "max" else 1.0
        for arm, rank in zip(group, rankdata([sign * a.final_best for a in group]), strict=True):
            ranks[(arm.algorithm, scheduler, seed)] = float(rank)
    return ranks


def table(arms: list[ArmResult], mode: str, target: float) -> list[AlgorithmRow]:
    """Rows ordered by scheduler, then best mean first."""
    ranks = _ranks(arms, mode)
    rows = []
    for scheduler in dict.fromkeys(a.scheduler for a in arms):
        for algorithm in dict.fromkeys(a.algorithm for a in arms if a.scheduler == scheduler):
            mine = [
                a for a in arms if (a.scheduler, a.algorithm) == (scheduler, algorithm) and a.curve
            ]
            if not mine:
                continue
            reached = [p for p in (reach(a.curve, target, mode) for a in mine) if p is not None]
            rows.append(
                AlgorithmRow(
                    scheduler=scheduler,
                    algorithm=algorithm,
                    finals=[a.final_best for a in mine],
                    mean_rank=float(np.mean([ranks[(algorithm, scheduler, a.seed)] for a in mine])),
                    samples_to_target=float(np.mean([p.samples for p in reached]))
                    if reached
                    else None,
                    seconds_to_target=float(np.mean([p.seconds for p in reached]))
                    if reached
                    else None,
                    reached=len(reached),
                    wall_s=float(np.mean([a.wall_s for a in mine])),
                    trials=float(np.mean([len(a.trials) for a in mine])),
                )
            )
    sign = -1 if mode == "max" else 1
    return sorted(
        rows,
        key=lambda r: (
            list(dict.fromkeys(a.scheduler for a in arms)).index(r.scheduler),
            sign * r.mean,
        ),
    )


def verdict(rows: list[AlgorithmRow], metric: str) -> str:
    """Whether the winner under one scheduler leads the runner-up by more than seed noise:
    the gap against their pooled seed-to-seed standard deviation, and a Welch t-test."""
    if len(rows) < 2:
        return f"only {rows[0].algorithm} ran under {rows[0].scheduler}; nothing to compare."
    winner, runner_up = rows[0], rows[1]
    gap = abs(winner.mean - runner_up.mean)
    spread = math.sqrt((winner.std**2 + runner_up.std**2) / 2)  # pooled over the two
    text = (
        f"Under {winner.scheduler}, {winner.algorithm} has the best mean {metric} "
        f"({winner.mean:.4f}) and leads {runner_up.algorithm} by {gap:.4f}; "
        f"the seed-to-seed standard deviation is {spread:.4f}"
    )
    if len(winner.finals) < 2 or len(runner_up.finals) < 2:
        return text + ", from a single seed: run more seeds to tell."
    from scipy.stats import ttest_ind

    p_value = float(ttest_ind(winner.finals, runner_up.finals, equal_var=False).pvalue)
    if math.isnan(p_value):  # both arms identical at every seed
        p_value = 1.0
    if gap <= spread:
        judgement = "The lead does not exceed the seed spread: the difference may be noise."
    elif p_value >= 0.05:
        judgement = (
            f"The lead exceeds the spread but is not significant with "
            f"{min(len(winner.finals), len(runner_up.finals))} seeds: it may be noise."
        )
    else:
        judgement = "The lead exceeds the seed spread."
    return text + f" (Welch t-test p = {p_value:.2f}). {judgement}"


def trials_study(trials: list[dict[str, Any]], space: dict[str, Dimension], mode: str) -> Any:
    """An Optuna study holding every trial (its config and best evaluation), for Optuna's
    importance evaluators and plots. Only searched dimensions count as parameters."""
    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = to_optuna_distributions(space)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    for trial in trials:
        if trial.get("best_metric") is None:
            continue
        params = {}
        for name, distribution in distributions.items():
            if name not in trial["config"]:  # a conditional key of another strategy
                continue
            value = trial["config"][name]
            off_grid = isinstance(distribution, CategoricalDistribution) and (
                value not in distribution.choices
            )
            if off_grid:
                break
            params[name] = value
        else:
            study.add_trial(
                create_trial(
                    params=params,
                    distributions={name: distributions[name] for name in params},
                    value=trial["best_metric"],
                )
            )
    return study


def importances(study: Any) -> dict[str, float]:
    """fANOVA importance of each searched hyperparameter, most important first (empty with
    under 2 trials, nothing searched, or every trial scoring the same: no variance to share
    out). It fits a random forest: compute it once per study."""
    import optuna

    if len(study.trials) < 2 or not study.trials[0].params:
        return {}
    if len({trial.value for trial in study.trials}) < 2:
        return {}
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))


@dataclass
class StrategyRow:
    """One fine-tuning strategy in a sweep that searched (or fixed) `strategy`: its best
    trial's score, what that trial trained, its speed and its checkpoint's size."""

    strategy: str
    trials: int
    best: float | None
    trainable_params: int | None
    samples_per_s: float | None
    weights_mb: float | None  # what the service loads
    checkpoint_mb: float | None  # with the training state (optimizer; a lora trial's adapters)


def _megabytes(folder: str | None, *, without: str | None = None) -> float | None:
    if folder is None or not Path(folder).is_dir():  # remote storage: not measured here
        return None
    files = [f for f in Path(folder).iterdir() if f.is_file() and f.name != without]
    return round(sum(f.stat().st_size for f in files) / 1e6, 1)


def strategy_rows(trials: list[dict[str, Any]], default: str, mode: str) -> list[StrategyRow]:
    """Per strategy (a trial without `strategy` in its config trains `default`)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for trial in trials:
        groups.setdefault(trial["config"].get("strategy", default), []).append(trial)
    rows = []
    for strategy, members in groups.items():
        scored = [t for t in members if t.get("best_metric") is not None]
        best = None
        for trial in scored:
            if best is None or better(trial["best_metric"], best["best_metric"], mode):
                best = trial
        speeds = [t["samples_per_s"] for t in members if t.get("samples_per_s")]
        checkpoint = best.get("best_checkpoint") if best else None
        rows.append(
            StrategyRow(
                strategy=strategy,
                trials=len(members),
                best=best["best_metric"] if best else None,
                trainable_params=best.get("trainable_params") if best else None,
                samples_per_s=round(float(np.median(speeds)), 1) if speeds else None,
                weights_mb=_megabytes(checkpoint, without=TRAINING_STATE),
                checkpoint_mb=_megabytes(checkpoint),
            )
        )
    return rows
