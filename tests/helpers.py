"""Helpers for tests: sweep files, and the headless Chromium that web pages are tested in."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium() -> str:
    """Debian's chromium, which playwright drives (no browser download)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Chromium is not installed (Debian: apt-get install chromium); .ci/run "
                    "installs it")
    return path


def tiny_sweep(tiny_model: str, storage: Path | str, **sections: Any) -> dict[str, Any]:
    """A small SST-2 sweep on the tiny model; keyword arguments replace whole sections."""
    sweep: dict[str, Any] = {
        "name": "tiny",
        "model": tiny_model,
        "data": {
            "train": "${HPO_DATA}/sst2/train.csv",
            "validation": "${HPO_DATA}/sst2/validation.csv",
            "text": "sentence",
            "max_train_samples": 256,
            "max_eval_samples": 64,
        },
        "metric": "loss",
        "search": {"algorithm": "random", "num_samples": 2, "max_concurrent": 2},
        "scheduler": {"name": "fifo", "max_epochs": 1},
        "space": {
            "learning_rate": {"loguniform": [1.0e-4, 3.0e-3]},
            "batch_size": {"choice": [16, 32]},
        },
        "train": {"evals_per_epoch": 2, "cpus_per_worker": 1},
        "storage": str(storage),
    }
    sweep.update(sections)
    return sweep


def write_yaml(path: Path, tree: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path
