"""Sweeps as Ray Jobs (`hpo submit`, `hpo jobs list|status|logs|stop`), through Ray's Job SDK,
which also carries Ray's token auth (RAY_AUTH_TOKEN, or the token file Ray keeps).

A submitted job runs `hpo run` on the cluster's head with this checkout's code: the packages
and the resolved sweep file travel in the job's `runtime_env` working dir, so the cluster needs
hpo's dependencies installed (the image or setup commands of cluster/*.yaml) but not this
version of hpo. Paths in the sweep file (data, storage) must be valid on the cluster: a shared
file system mounted at the same path, or a Hub dataset.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from trainables.errors import UserError

PACKAGES = ("search", "trainables", "serve", "cluster")
PROJECT = Path(__file__).resolve().parents[1]
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def job_client(address: str):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise UserError(
            f"--address {address}: cannot reach the Ray Jobs API ({err}); give the dashboard "
            "address, e.g. http://HEAD:8265"
        ) from None


def _stage(sweep_yaml: str) -> Path:
    """A working dir holding hpo's packages and the resolved sweep file."""
    stage = Path(tempfile.mkdtemp(prefix="hpo-job-"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in PACKAGES:
        shutil.copytree(PROJECT / package, stage / package, ignore=ignore)
    (stage / "sweep.yaml").write_text(sweep_yaml)
    return stage


def submit_sweep(sweep, address: str, *, serve: bool, env: dict[str, str]) -> str:
    """Submits `hpo run` of a loaded sweep as a Ray Job; returns the job id."""
    from search.runner import IN_JOB, trial_env_vars
    from search.sweep import sweep_to_yaml

    storage = Path(sweep.storage).expanduser()
    if "://" not in sweep.storage and not storage.is_absolute():
        # the job runs in a temporary working dir on the head: anchor the storage here
        sweep = sweep.model_copy(update={"storage": str(storage.resolve())})
    stage = _stage(sweep_to_yaml(sweep))
    entrypoint = "python -m search.cli run sweep.yaml --no-keep-serving" + (
        "" if serve else " --no-serve"
    )
    # The job's runtime env reaches the driver and every trial; the driver adds none of its own
    # (IN_JOB), so the working dir lives as long as the job.
    env_vars = {**trial_env_vars(), **env, IN_JOB: "1"}
    try:
        return job_client(address).submit_job(
            entrypoint=entrypoint,
            runtime_env={"working_dir": str(stage), "env_vars": env_vars},
            metadata={"hpo_sweep": sweep.name},
        )
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def follow(address: str, job_id: str, write) -> str:
    """Streams a job's logs through `write` until it ends; returns its final status."""
    client = job_client(address)

    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            write(lines)

    asyncio.run(tail())
    status = str(client.get_job_status(job_id).value)
    while status not in TERMINAL:  # the log stream can close a moment before the status
        time.sleep(0.5)
        status = str(client.get_job_status(job_id).value)
    return status


def list_jobs(address: str) -> list[dict[str, Any]]:
    return [
        {"job_id": job.submission_id or job.job_id, "status": str(job.status.value),
         "sweep": (job.metadata or {}).get("hpo_sweep", ""), "entrypoint": job.entrypoint,
         "start_time": job.start_time}
        for job in job_client(address).list_jobs()
    ]


def job_status(address: str, job_id: str) -> dict[str, Any]:
    try:
        info = job_client(address).get_job_info(job_id)
    except RuntimeError as err:
        raise UserError(f"job {job_id}: {err}") from None
    return {"job_id": job_id, "status": str(info.status.value), "message": info.message,
            "sweep": (info.metadata or {}).get("hpo_sweep", ""), "entrypoint": info.entrypoint}


def job_logs(address: str, job_id: str) -> str:
    try:
        return job_client(address).get_job_logs(job_id)
    except RuntimeError as err:
        raise UserError(f"job {job_id}: {err}") from None


def stop_job(address: str, job_id: str) -> bool:
    try:
        return job_client(address).stop_job(job_id)
    except RuntimeError as err:
        raise UserError(f"job {job_id}: {err}") from None
