"""Helpers for tests: sweep files, and the headless Chromium that web pages are tested in."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


S3_KEYS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def local_s3_server(bucket: str) -> Iterator[dict[str, str]]:
    """moto's S3 server on 127.0.0.1 with one bucket; yields the environment that points AWS
    clients (pyarrow, and Ray through it) at it, and stops the server by pid at the end."""
    import requests

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                requests.get(endpoint, timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.5)
        s3_filesystem(endpoint, allow_bucket_creation=True).create_dir(bucket)
        yield {"AWS_ENDPOINT_URL": endpoint, **S3_KEYS}
    finally:
        server.terminate()
        server.wait(timeout=30)


def s3_filesystem(endpoint: str, **options: Any):
    """pyarrow's S3 client for the test server, with the test server's keys."""
    import pyarrow.fs as pafs

    return pafs.S3FileSystem(endpoint_override=endpoint, access_key="test", secret_key="test",
                             region="us-east-1", **options)


def bucket_objects(env: dict[str, str], bucket: str, prefix: str) -> dict[str, int]:
    """Every object under `bucket/prefix`: its key relative to the prefix, and its size."""
    import pyarrow.fs as pafs

    fs = s3_filesystem(env["AWS_ENDPOINT_URL"])
    root = f"{bucket}/{prefix}"
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    return {i.path[len(root) + 1:]: i.size for i in infos if i.type == pafs.FileType.File}
