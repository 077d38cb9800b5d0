"""Shared fixtures: the shared data folder, a tiny BERT built from a config (random weights,
trains in seconds), one Ray instance for the integration tests, and one finished tiny sweep for
the tests that only read a run dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    """HPO_DATA, else ../shared/data beside the repo (as the README sets up)."""
    return Path(os.environ.get("HPO_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    folder = shared_data()
    if not (folder / "sst2" / "train.csv").is_file():
        pytest.fail(f"shared data not found at {folder}; set HPO_DATA to the data folder")
    os.environ["HPO_DATA"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2-layer, 32-wide BERT with MiniLM's tokenizer, saved as a local model folder."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from hpo.trainables.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    folder = tmp_path_factory.mktemp("tiny-bert")
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def serve_port() -> int:
    """One free port for the service (Serve keeps its first port per Ray session)."""
    from tests.helpers import free_port

    return free_port()


@pytest.fixture(scope="session")
def ray_session():
    """One embedded Ray for every integration test (starting Ray costs seconds), started as
    `hpo` starts it (with Serve's default ingress)."""
    import ray

    from hpo.search.ray_setup import RayTarget, connect_ray
    from hpo.serve.config import ServeConfig

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    connect_ray(RayTarget(), num_cpus=4, serve=ServeConfig())
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def finished_run(tiny_model: str, data_dir: Path, ray_session: None, tmp_path_factory) -> Path:
    """The run dir of one finished tiny sweep (random search, 2 trials, FIFO)."""
    from hpo.search.runner import run_sweep
    from hpo.search.sweepfile import parse_sweep
    from tests.helpers import tiny_sweep

    storage = tmp_path_factory.mktemp("finished")
    return Path(run_sweep(parse_sweep(tiny_sweep(tiny_model, storage)))["run_dir"])
