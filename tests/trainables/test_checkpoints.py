"""A checkpoint folder may come from a shared file system or a bucket: loading its training
state must never run code that a pickle carries. Checkpoints are staged in memory when there is
room, so that a report writes them to disk once (Ray's copy into the run dir), not twice."""

from __future__ import annotations

import os
import pickle
import shutil
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from hpo.trainables import checkpoints
from hpo.trainables.checkpoints import (
    STAGING_ENV,
    TRAINING_STATE,
    checkpoint_bytes,
    restore_training_state,
    staging_folder,
)


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


def test_checkpoint_bytes_counts_weights_and_adam_moments() -> None:
    model = torch.nn.Linear(10, 10)  # 110 float32 parameters: 440 bytes
    optimizer = torch.optim.AdamW(model.parameters())
    assert checkpoint_bytes(model, optimizer) == 440  # no state before the first step
    model(torch.ones(1, 10)).sum().backward()
    optimizer.step()
    assert checkpoint_bytes(model, optimizer) >= 3 * 440  # weights, exp_avg, exp_avg_sq


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm on this system")
def test_a_checkpoint_is_staged_in_memory_when_there_is_room(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(STAGING_ENV, raising=False)
    with staging_folder(1_000_000) as folder:
        assert Path(folder).parent == Path("/dev/shm") and Path(folder).is_dir()
    assert not Path(folder).exists()


def test_without_room_in_memory_a_checkpoint_is_staged_in_the_temp_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.delenv(STAGING_ENV, raising=False)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**8, 10**8))
    monkeypatch.setattr(checkpoints.tempfile, "tempdir", str(tmp_path))
    with staging_folder(60_000_000) as folder:  # 2 x 60 MB > 100 MB free
        assert Path(folder).parent == tmp_path


def test_the_staging_folder_can_be_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(STAGING_ENV, str(tmp_path))
    with staging_folder(1) as folder:
        assert Path(folder).parent == tmp_path
