"""What every trial of a sweep shares: the resolved model, the objective, the budget and the
infrastructure. Built once by the runner, shipped to every trial."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hpo.trainables.config import TrainConfig


def reports_in(epochs: float, evals_per_epoch: int) -> int:
    """How many evaluations (Tune reports, the schedulers' time unit) `epochs` of training make."""
    return max(1, round(epochs * evals_per_epoch))


@dataclass(frozen=True)
class ServingProbe:
    """How the service will run the model: measured that way in each trial.

    Attributes:
        threads: torch threads of a replica (`serve.cpus_per_replica`).
        batch_size: texts in one batched forward pass (`serve.max_batch_size`).
        runtime: torch or int8 (`serve.runtime`).
        repeats: single-text passes timed per round; the lowest median of three rounds is
            `latency_ms`.
    """

    threads: int = 1
    batch_size: int = 32
    runtime: Literal["torch", "int8"] = "torch"
    repeats: int = 30


@dataclass(frozen=True)
class TrainJob:
    """Attributes:
    model_source: a local folder or Hub id that `from_pretrained` loads.
    offline: load the model from the local Hub cache only (the Hub is unreachable).
    metric, mode: the sweep's objective (checkpoints are ranked by it).
    max_epochs: the most a trial trains; schedulers may stop it earlier.
    train: the sweep's `train` section.
    threads: torch threads (and Ray CPUs) per worker.
    use_gpu: resolved from `train.use_gpu` against the cluster.
    launcher: resolved from `train.launcher`.
    run_dir: the sweep's run dir (the ray_train launcher keeps its runs there).
    max_failures: worker-group restarts a Ray Train trial may make from its last checkpoint.
    serving: how the service will run the model, when the sweep minimises what serving it
        costs (`latency_ms`, `params`, `size_mb`): each trial measures that and reports it.
    """

    model_source: str
    offline: bool
    metric: str
    mode: Literal["max", "min"]
    max_epochs: float
    train: TrainConfig
    threads: int
    use_gpu: bool
    launcher: Literal["in_trial", "ray_train"]
    run_dir: str
    max_failures: int = 0
    serving: ServingProbe | None = None

    @property
    def num_reports(self) -> int:
        """Evaluations in a full trial, the unit the schedulers count in."""
        return reports_in(self.max_epochs, self.train.evals_per_epoch)
