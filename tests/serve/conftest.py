"""A deployed tiny model shared by the serving tests (deploying costs seconds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hpo.cli.serving import deploy_run
from hpo.core.storage import StorageDir
from hpo.search.runner import run_sweep
from hpo.search.sweepfile import parse_sweep
from tests.helpers import tiny_sweep

MAX_REQUEST_BYTES = 1_000_000
MAX_QUEUED_REQUESTS = 40
"""Above the 32 clients of the load tests, below the clients of the replica-kill test."""
BATCH_WAIT_S = 0.3
"""Long, so that a lone request held for company would show in its latency."""


def serving_sweep(tiny_model: str, storage: Path, port: int, search_seed: int = 0):
    return parse_sweep(
        tiny_sweep(
            tiny_model,
            storage,
            name="served",
            metric="accuracy",
            data={
                "train": "${HPO_DATA}/sst2/train.csv",
                "validation": "${HPO_DATA}/sst2/validation.csv",
                "test": "${HPO_DATA}/sst2/test.csv",
                "text": "sentence",
                "label_names": ["negative", "positive"],
                "max_train_samples": 128,
                "max_eval_samples": 64,
            },
            search={"algorithm": "random", "num_samples": 1, "seed": search_seed},
            serve={
                "port": port,
                "max_inputs_per_request": 8,
                "max_text_chars": 2000,
                "max_batch_size": 16,
                "batch_wait_timeout_s": BATCH_WAIT_S,
                "explain_steps": 8,
                "max_request_bytes": MAX_REQUEST_BYTES,
                "max_queued_requests": MAX_QUEUED_REQUESTS,
            },
        )
    )


@pytest.fixture(scope="session")
def service(
    tiny_model: str, tmp_path_factory, serve_port: int, ray_session: None, data_dir: Path
) -> dict[str, Any]:
    storage = tmp_path_factory.mktemp("serving")
    summary = run_sweep(serving_sweep(tiny_model, storage, serve_port))
    deployment = deploy_run(StorageDir.at(summary["run_dir"]))
    key = deployment.key_file.read_text().strip()
    return {
        "url": deployment.url,
        "key": key,
        "summary": summary,
        "deployment": deployment,
        "storage": storage,
    }
