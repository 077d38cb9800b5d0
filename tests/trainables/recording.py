"""What the loop tests share: a session that records reports and checkpoints, and a job for
the tiny model."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

import torch

from hpo.trainables.config import TrainConfig
from hpo.trainables.job import TrainJob


class RecordingSession:
    """A TrialSession that keeps every report and a copy of every checkpoint."""

    world_rank = 0
    trial_id = "recorded"
    world_size = 1
    device = torch.device("cpu")
    checkpoints_ahead_of_tune = True

    def __init__(self, keep_in: Path, restore_from: str | None = None) -> None:
        self.keep_in = keep_in
        self.restore_from = restore_from
        self.reports: list[dict[str, Any]] = []
        self.checkpoints: list[str] = []

    def restored_checkpoint(self) -> contextlib.nullcontext[str | None]:
        return contextlib.nullcontext(self.restore_from)

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        self.reports.append(metrics)
        kept = self.keep_in / f"checkpoint_{len(self.reports)}"
        shutil.copytree(checkpoint_dir, kept)
        self.checkpoints.append(str(kept))


def job_for(tiny_model: str, max_epochs: float = 2, evals_per_epoch: int = 2) -> TrainJob:
    return TrainJob(
        model_source=tiny_model,
        offline=True,
        metric="accuracy",
        mode="max",
        max_epochs=max_epochs,
        train=TrainConfig(evals_per_epoch=evals_per_epoch),
        threads=1,
        use_gpu=False,
        launcher="in_trial",
        run_dir="/unused",
    )
