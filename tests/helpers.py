"""Helpers for tests: sweep files, and the headless Chromium that web pages are tested in."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """Debian's chromium, which playwright drives (no browser download)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "Chromium is not installed (Debian: apt-get install chromium); .ci/run installs it"
        )
    return path


def hpo_command(*args: str, env: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """`python -m hpo.cli ARGS` and its environment: this one, plus `env`, with wide output."""
    environment = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1", **(env or {})}
    return [sys.executable, "-m", "hpo.cli", *args], environment


def run_hpo(
    *args: str, env: dict[str, str] | None = None, timeout: float = 400
) -> subprocess.CompletedProcess:
    """Runs `hpo ARGS` as a user would, in a subprocess, its output captured."""
    command, environment = hpo_command(*args, env=env)
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=timeout)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_hpo(
    *args: str, env: dict[str, str] | None = None, sigint_ignored: bool = False
) -> subprocess.Popen:
    """Starts `hpo ARGS` in the background, its output piped (to interrupt it, say);
    `sigint_ignored`: as a shell starts a background job, ignoring SIGINT."""
    command, environment = hpo_command(*args, env=env)
    return subprocess.Popen(
        command,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint if sigint_ignored else None,
    )


def wait_for(condition: Callable[[], Any], what: str, timeout_s: float = 300) -> Any:
    """Polls `condition` until it returns something truthy; fails the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def processes_named(root: int, title: str) -> list[Any]:
    """The descendants of process `root` whose command line holds `title` (Ray names its
    workers `ray::ImplicitFunc.train`, `ray::RayTrainWorker`...)."""
    import psutil

    found = []
    for process in psutil.Process(root).children(recursive=True):
        try:
            if title in " ".join(process.cmdline()):
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


def kill_tree(root: int) -> None:
    """SIGKILL to a process and all its descendants at once, as a crash of its machine would
    end them (an embedded Ray's processes are the driver's children)."""
    import psutil

    try:
        parent = psutil.Process(root)
    except psutil.NoSuchProcess:
        return
    family = [parent, *parent.children(recursive=True)]
    for process in family:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=30)


def result_rows(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every report of every trial of a local run dir, from Tune's result.json files."""
    import json

    rows = {}
    for result_file in run_dir.glob("*/result.json"):
        lines = [line for line in result_file.read_text().splitlines() if line.strip()]
        reports = [json.loads(line) for line in lines]
        if reports:
            rows[reports[0]["trial_id"]] = reports
    return rows


def python_output(*lines: str) -> str:
    """Runs Python code in a fresh interpreter (nothing imported yet); returns what it printed."""
    done = subprocess.run([sys.executable, "-c", "\n".join(lines)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


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


def sweep_tree(**sections: Any) -> dict[str, Any]:
    """A sweep file's tree that validates without files or models (for validation tests)."""
    return {**tiny_sweep("some/model", Path("/tmp/runs")), **sections}


def write_yaml(path: Path, tree: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


S3_KEYS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextlib.contextmanager
def local_s3_server(bucket: str) -> Iterator[dict[str, str]]:
    """moto's S3 server on 127.0.0.1 with one bucket; yields the environment that points AWS
    clients (pyarrow, and Ray through it) at it, and stops the server by pid at the end."""
    import requests

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        # moto imports boto3, Flask and its models first: minutes on a busy 2-core machine
        deadline = time.monotonic() + 300
        while True:
            try:
                requests.get(endpoint, timeout=5)
                break
            except requests.ConnectionError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto's S3 server did not start on {endpoint}") from None
                time.sleep(0.5)
        s3_filesystem(endpoint, allow_bucket_creation=True).create_dir(bucket)
        yield {"AWS_ENDPOINT_URL": endpoint, **S3_KEYS}
    finally:
        server.terminate()
        server.wait(timeout=30)


def s3_filesystem(endpoint: str, **options: Any):
    """pyarrow's S3 client for the test server, with the test server's keys."""
    import pyarrow.fs as pafs

    return pafs.S3FileSystem(
        endpoint_override=endpoint,
        access_key="test",
        secret_key="test",
        region="us-east-1",
        **options,
    )


def bucket_objects(env: dict[str, str], bucket: str, prefix: str) -> dict[str, int]:
    """Every object under `bucket/prefix`: its key relative to the prefix, and its size."""
    import pyarrow.fs as pafs

    fs = s3_filesystem(env["AWS_ENDPOINT_URL"])
    root = f"{bucket}/{prefix}"
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    return {i.path[len(root) + 1 :]: i.size for i in infos if i.type == pafs.FileType.File}
