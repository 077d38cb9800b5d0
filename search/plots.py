"""The reports' pictures, drawn with matplotlib (no display needed): best so far against
compute with a band over seeds, hyperparameter importance, and parallel coordinates."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from hpo.search.analysis import best_so_far_at
from hpo.search.compute import CurvePoint

AXES = {"samples": "training samples (all trials)", "seconds": "wall time (s)"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def seed_band(
    curves: list[list[CurvePoint]], xs: np.ndarray, axis: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and standard deviation over seeds where every seed has a value."""
    ys = np.array([best_so_far_at(curve, xs, axis) for curve in curves])
    defined = ~np.isnan(ys).any(axis=0)
    ys = ys[:, defined]
    return xs[defined], ys.mean(axis=0), ys.std(axis=0)


def plot_curves(
    curves: dict[str, list[list[CurvePoint]]],
    path: Path,
    *,
    metric: str,
    title: str,
    samples_limit: int | None = None,
) -> None:
    """Best so far against training samples and against wall time: per label, the mean over
    its curves (seeds) with a band of one standard deviation."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, ax in zip(AXES, axes, strict=True):
        ends = [curve[-1] for runs in curves.values() for curve in runs if curve]
        limit = max(getattr(p, axis) for p in ends) if ends else 1.0
        if axis == "samples" and samples_limit:
            limit = samples_limit
        xs = np.linspace(0, limit, 400)
        for label, runs in curves.items():
            runs = [c for c in runs if c]
            if not runs:
                continue
            x, mean, std = seed_band(runs, xs, axis)
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


def plot_importance(scores: dict[str, float], path: Path, *, trials: int) -> None:
    """fANOVA importance as horizontal bars, the most important on top."""
    plt = _pyplot()
    names = list(scores)[::-1]
    figure, ax = plt.subplots(figsize=(7, 0.5 * len(names) + 1.5))
    bars = ax.barh(names, [scores[n] for n in names], color="#4C72B0")
    ax.bar_label(bars, fmt="%.3f", padding=3)
    ax.set_xlabel("importance (fANOVA)")
    ax.set_xlim(0, max(1.0, max(scores.values()) * 1.15))
    ax.set_title(f"Hyperparameter importance over {trials} trials")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_parallel_coordinates(study: Any, path: Path) -> None:
    """Optuna's parallel-coordinate plot of every trial's hyperparameters and best metric."""
    from optuna.visualization import matplotlib as optuna_plots

    plt = _pyplot()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        ax = optuna_plots.plot_parallel_coordinate(study)
    ax.figure.set_size_inches(11, 5)
    ax.figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(ax.figure)


def plot_front(
    trials: list[tuple[str, float, float]],
    front: list[str],
    chosen: str | None,
    path: Path,
    *,
    cost: str,
    metric: str,
) -> None:
    """Every trial's metric against one serving cost (`trials`: id, cost, metric): the Pareto
    front as a line, dominated trials grey, the deployed point circled."""
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(7, 4.5))
    by_id = {trial_id: (x, y) for trial_id, x, y in trials}
    others = [by_id[t] for t in by_id if t not in front]
    if others:
        ax.scatter(*zip(*others, strict=True), color="#BBBBBB", label="dominated")
    line = sorted(by_id[t] for t in front)
    ax.plot(*zip(*line, strict=True), "o-", color="#4C72B0", label="Pareto front")
    if chosen in by_id:
        ax.scatter(
            *by_id[chosen],
            s=220,
            facecolors="none",
            edgecolors="#C44E52",
            linewidths=2,
            label=f"deployed ({chosen})",
        )
    ax.set_xlabel(cost)
    ax.set_ylabel(f"best validation {metric}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    ax.set_title(f"{metric} against {cost}: {len(front)} of {len(by_id)} trials on the front")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
