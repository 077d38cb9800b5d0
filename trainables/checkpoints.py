"""A trial's checkpoint: a `save_pretrained` folder that `transformers.pipeline` loads, plus the
training state that resuming needs (optimizer, LR schedule, step, RNG) and the metrics reported
with it."""

from __future__ import annotations

import os
from typing import Any

import torch

from hpo.core.rundir import TRAINING_STATE


def save_checkpoint(
    folder: str,
    model: Any,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    step: int,
    metrics: dict[str, float],
) -> None:
    """Writes the model and tokenizer (pipeline-ready) and the training state into `folder`."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "torch_rng": torch.get_rng_state(),
            "metrics": metrics,
        },
        os.path.join(folder, TRAINING_STATE),
    )


def restore_training_state(
    folder: str, optimizer: torch.optim.Optimizer, scheduler: Any
) -> tuple[int, dict[str, float]]:
    """Loads the training state into `optimizer` and `scheduler`; returns the step to go on
    from and the metrics reported with the checkpoint. `weights_only`: a checkpoint holds
    tensors and plain values, never code to run."""
    state = torch.load(os.path.join(folder, TRAINING_STATE), weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"]), state.get("metrics", {})
