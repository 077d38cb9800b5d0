"""One real tiny comparison (random and TPE, under FIFO and ASHA, two seeds), shared by the
tests of comparisons, reports and TensorBoard logs: running it costs about a minute."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo.search.compare import run_comparison
from hpo.search.sweepfile import parse_sweep
from tests.helpers import tiny_sweep

TRAIN = 256  # training examples of the tiny sweep
BUDGET = 512  # samples per arm: two epochs
PER_REPORT = TRAIN // 2  # two evaluations per epoch


@pytest.fixture(scope="session")
def comparison(tiny_model: str, tmp_path_factory, ray_session, data_dir) -> Path:
    tmp_path = tmp_path_factory.mktemp("compare")
    sweep = parse_sweep(
        tiny_sweep(
            tiny_model,
            tmp_path / "runs",
            scheduler={"name": "asha", "max_epochs": 1, "grace_period": 0.5, "reduction_factor": 2},
            compare={
                "algorithms": ["random", "tpe"],
                "schedulers": ["fifo", "asha"],
                "seeds": 2,
                "budget": BUDGET,
            },
        )
    )
    return run_comparison(sweep).local
