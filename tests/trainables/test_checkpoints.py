"""A checkpoint folder may come from a shared file system or a bucket: loading its training
state must never run code that a pickle carries."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from hpo.trainables.checkpoints import TRAINING_STATE, restore_training_state


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_training_state_that_carries_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    torch.save({"step": 3, "payload": _RunsCode(marker)}, tmp_path / TRAINING_STATE)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    with pytest.raises(pickle.UnpicklingError):
        restore_training_state(str(tmp_path), optimizer, scheduler)
    assert not marker.exists()
