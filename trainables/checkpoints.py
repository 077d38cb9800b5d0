"""A trial's checkpoint: a `save_pretrained` folder that `transformers.pipeline` loads, plus the
training state that resuming needs (optimizer, LR schedule, step, RNG) and the metrics reported
with it.

A checkpoint is written to a staging folder and Ray copies it into the run dir. Staged on disk,
every report would write it to disk twice; staged in memory (/dev/shm, when it has room), once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from hpo.core.rundir import TRAINING_STATE

STAGING_ENV = "HPO_CHECKPOINT_STAGING"
"""Where checkpoints are staged: `auto` (default: /dev/shm when it has room, else the temp
folder) or a folder."""
MEMORY = "/dev/shm"


def checkpoint_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """About what a checkpoint of this model and optimizer takes: weights and optimizer state."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    state = sum(
        value.numel() * value.element_size()
        for per_parameter in optimizer.state.values()
        for value in per_parameter.values()
        if isinstance(value, torch.Tensor)
    )
    return weights + state


def staging_root(expected_bytes: int) -> str | None:
    """The folder to stage a checkpoint of `expected_bytes` in (None: the temp folder). Memory
    only with room for it twice over: trials running side by side stage theirs at once."""
    choice = os.environ.get(STAGING_ENV, "auto")
    if choice != "auto":
        return choice
    try:
        free = shutil.disk_usage(MEMORY).free
    except OSError:  # no /dev/shm (macOS)
        return None
    return MEMORY if free >= 2 * expected_bytes else None


@contextlib.contextmanager
def staging_folder(expected_bytes: int) -> Iterator[str]:
    """An empty folder to write one checkpoint into, deleted once Ray has copied it."""
    with tempfile.TemporaryDirectory(
        prefix="hpo-checkpoint-", dir=staging_root(expected_bytes)
    ) as folder:
        yield folder


@dataclass
class TrainingState:
    """What resuming a trial needs besides the weights in the checkpoint. `adapters`: a lora
    trial's adapters and head (its checkpoint's weights are merged)."""

    optimizer: torch.optim.Optimizer
    scheduler: Any
    step: int
    metrics: dict[str, float]
    trial_id: str
    adapters: dict[str, torch.Tensor] | None = None


def save_checkpoint(folder: str, model: Any, tokenizer: Any, state: TrainingState) -> None:
    """Writes the model and tokenizer (pipeline-ready) and the training state into `folder`."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    torch.save(
        {
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "step": state.step,
            "torch_rng": torch.get_rng_state(),
            "metrics": state.metrics,
            "trial_id": state.trial_id,
            "adapters": state.adapters,
        },
        os.path.join(folder, TRAINING_STATE),
    )


@dataclass(frozen=True)
class Restored:
    """What a checkpoint's training state gives back besides the optimizer and schedule."""

    step: int
    metrics: dict[str, float]
    trial_id: str | None  # who wrote it (None in checkpoints from before hpo 0.2)
    adapters: dict[str, torch.Tensor] | None


def restore_training_state(
    folder: str, optimizer: torch.optim.Optimizer, scheduler: Any
) -> Restored:
    """Loads the training state into `optimizer` and `scheduler`. `weights_only`: a checkpoint
    holds tensors and plain values, never code to run."""
    state = torch.load(os.path.join(folder, TRAINING_STATE), weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    return Restored(
        step=int(state["step"]),
        metrics=state.get("metrics", {}),
        trial_id=state.get("trial_id"),
        adapters=state.get("adapters"),
    )
