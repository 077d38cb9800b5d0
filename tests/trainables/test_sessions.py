"""A restored checkpoint is read where it lies: nothing is copied into the temp folder (a
MiniLM checkpoint is 270 MB, and a killed trial restores at every retry)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ray.tune import Checkpoint

from hpo.trainables.sessions import checkpoint_folder


def test_a_local_checkpoint_is_used_in_place(tmp_path: Path, monkeypatch) -> None:
    saved = tmp_path / "checkpoint_000001"
    saved.mkdir()
    (saved / "model.safetensors").write_bytes(b"weights")
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    with checkpoint_folder(Checkpoint.from_directory(str(saved))) as folder:
        assert folder is not None
        assert (Path(folder) / "model.safetensors").read_bytes() == b"weights"
    assert list(temp.iterdir()) == []
    with checkpoint_folder(None) as folder:
        assert folder is None
