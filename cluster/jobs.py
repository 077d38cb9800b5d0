"""Sweeps as Ray Jobs (`hpo submit`, `hpo jobs list|status|logs|stop`), through Ray's Job SDK,
which also carries Ray's token auth (RAY_AUTH_TOKEN, or the token file Ray keeps).

A submitted job runs `hpo run` on the cluster's head with this installation's code: the `hpo`
package (laid out as it imports) and the resolved sweep file travel in the job's `runtime_env`
working dir, so the cluster needs hpo's dependencies installed (the image or setup commands of
cluster/*.yaml) but not this version of hpo. Paths in the sweep file (data, storage) must be
valid on the cluster: a shared file system mounted at the same path, or a Hub dataset.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hpo.core.errors import UserError
from hpo.core.storage import user_path
from hpo.search.ray_setup import IN_JOB, trial_env_vars
from hpo.search.sweep import Sweep
from hpo.search.sweepfile import sweep_to_yaml

SUBPACKAGES = ("core", "cli", "trainables", "search", "serve", "cluster")
"""Every subpackage of `hpo`. In a checkout some live outside `hpo/` (`search/` is
`hpo.search`), so each is found where Python imports it from."""
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
SWEEP_FILE = "sweep.yaml"
"""The resolved sweep file, in the job's working dir."""


TOKEN_HINT = (
    "this machine needs the cluster's Ray auth token: copy it to ~/.ray/auth_token, or set "
    "RAY_AUTH_TOKEN_PATH (a file) or RAY_AUTH_TOKEN"
)


@contextlib.contextmanager
def _jobs_api(address: str, what: str = "") -> Iterator[None]:
    """Turns the Job SDK's errors into one line that names the fix."""
    from ray.exceptions import AuthenticationError

    where = f"{what}: " if what else ""
    try:
        yield
    except AuthenticationError as err:
        reason = "its token is not the cluster's" if "invalid" in str(err) else "no token found"
        raise UserError(
            f"{where}the Ray cluster at {address} refused us ({reason}); {TOKEN_HINT}"
        ) from None
    except (ConnectionError, RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "does not exist" in first:
            raise UserError(f"{where}no such job on the cluster at {address}") from None
        raise UserError(
            f"{where}--address {address}: cannot use the Ray Jobs API ({first}); give the "
            "dashboard's address, e.g. http://HEAD:8265"
        ) from None


def job_client(address: str) -> Any:
    from ray.job_submission import JobSubmissionClient

    with _jobs_api(address):
        return JobSubmissionClient(address)


def copy_package(target: Path) -> Path:
    """Copies the `hpo` package into `target/hpo`, laid out as it imports (`hpo/search`,
    `hpo/serve`, ...), wherever its subpackages live on this machine; returns `target/hpo`."""
    root = Path(importlib.util.find_spec("hpo").origin).parent
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    package = target / "hpo"
    package.mkdir(parents=True)
    shutil.copy2(root / "__init__.py", package / "__init__.py")
    for name in SUBPACKAGES:
        spec = importlib.util.find_spec(f"hpo.{name}")
        source = Path(next(iter(spec.submodule_search_locations)))
        shutil.copytree(source, package / name, ignore=ignore)
    return package


def _stage(sweep_yaml: str) -> Path:
    """A working dir holding the `hpo` package and the resolved sweep file."""
    stage = Path(tempfile.mkdtemp(prefix="hpo-job-"))
    copy_package(stage)
    (stage / SWEEP_FILE).write_text(sweep_yaml)
    return stage


def _entrypoint(serve: bool) -> str:
    """The job's shell command. It leaves the working dir before Python starts, finding the
    code through PYTHONPATH: Ray may unpack the working dir anew as trials start, which would
    pull the driver's current directory from under it."""
    command = f'python -m hpo.cli run "$JOB_DIR/{SWEEP_FILE}" --no-keep-serving'
    if not serve:
        command += " --no-serve"
    return (
        'JOB_DIR="$PWD"; cd "${TMPDIR:-/tmp}" && '
        f'PYTHONPATH="$JOB_DIR${{PYTHONPATH:+:$PYTHONPATH}}" {command}'
    )


def submit_sweep(sweep: Sweep, address: str, *, serve: bool, env: dict[str, str]) -> str:
    """Submits `hpo run` of a loaded sweep as a Ray Job; returns the job id. `env` reaches the
    job's driver and every trial."""
    storage = user_path(sweep.storage)
    if "://" not in sweep.storage and not storage.is_absolute():
        # the job runs in a temporary working dir on the head: anchor the storage here
        sweep = sweep.model_copy(update={"storage": str(storage.resolve())})
    stage = _stage(sweep_to_yaml(sweep))
    entrypoint = _entrypoint(serve)
    # The job's runtime env reaches the driver and every trial; the driver adds none of its own
    # (IN_JOB), so the working dir lives as long as the job.
    env_vars = {**trial_env_vars(offline=False), **env, IN_JOB: "1"}
    try:
        with _jobs_api(address):
            return job_client(address).submit_job(
                entrypoint=entrypoint,
                runtime_env={"working_dir": str(stage), "env_vars": env_vars},
                metadata={"hpo_sweep": sweep.name},
            )
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def follow(address: str, job_id: str, write: Callable[[str], Any]) -> str:
    """Streams a job's logs through `write` until it ends; returns its final status."""
    client = job_client(address)

    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            write(lines)

    with _jobs_api(address, f"job {job_id}"):
        asyncio.run(tail())
        status = str(client.get_job_status(job_id).value)
        while status not in TERMINAL:  # the log stream can close a moment before the status
            time.sleep(0.5)
            status = str(client.get_job_status(job_id).value)
    return status


def list_jobs(address: str) -> list[dict[str, Any]]:
    with _jobs_api(address):
        jobs = job_client(address).list_jobs()
    return [
        {
            "job_id": job.submission_id or job.job_id,
            "status": str(job.status.value),
            "sweep": (job.metadata or {}).get("hpo_sweep", ""),
            "entrypoint": job.entrypoint,
            "start_time": job.start_time,
        }
        for job in jobs
    ]


def job_status(address: str, job_id: str) -> dict[str, Any]:
    with _jobs_api(address, f"job {job_id}"):
        info = job_client(address).get_job_info(job_id)
    return {
        "job_id": job_id,
        "status": str(info.status.value),
        "message": info.message,
        "sweep": (info.metadata or {}).get("hpo_sweep", ""),
        "entrypoint": info.entrypoint,
    }


def job_logs(address: str, job_id: str) -> str:
    with _jobs_api(address, f"job {job_id}"):
        return job_client(address).get_job_logs(job_id)


def stop_job(address: str, job_id: str) -> bool:
    with _jobs_api(address, f"job {job_id}"):
        return job_client(address).stop_job(job_id)
