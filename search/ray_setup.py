"""Connecting the driver to Ray: an embedded single-node Ray sized for the sweep, or a running
cluster; the environment of every trial process; and Tune's known log noise filtered out."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo.core.errors import UserError
from hpo.search.sweep import Sweep

if TYPE_CHECKING:
    from hpo.serve.config import ServeConfig

IN_JOB = "HPO_IN_RAY_JOB"
"""Set in the runtime env of sweeps submitted as Ray Jobs (`hpo submit`)."""


@dataclass(frozen=True)
class RayTarget:
    """Where a sweep runs.

    Attributes:
        address: a cluster to join (host:port or ray://...); None starts an embedded Ray.
        verbose: show Ray's own logs.
        in_job: the driver runs as a Ray Job, whose runtime env already carries the trials'
            environment and working dir (Ray would not merge a second one).
    """

    address: str | None = None
    verbose: bool = False
    in_job: bool = False


def trial_env_vars(*, offline: bool) -> dict[str, str]:
    """The environment of every trial process: quiet libraries, and the Hub offline where the
    driver found it unreachable."""
    env = {"TRANSFORMERS_VERBOSITY": "error", "TQDM_DISABLE": "1"}
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def threads_per_worker(sweep: Sweep, embedded: bool) -> int:
    """Torch threads (and Ray CPUs) of each worker: the sweep's, or this machine's cores shared
    between the workers of the trials that can run at once (1 on a cluster, where Ray spreads
    trials): a sweep of fewer trials than `max_concurrent` leaves no core idle."""
    if sweep.train.cpus_per_worker != "auto":
        return sweep.train.cpus_per_worker
    if not embedded:
        return 1
    sharing = min(sweep.search.max_concurrent, sweep.num_trials()) * sweep.train.workers
    return max(1, (os.cpu_count() or 1) // sharing)


def cpus_needed(sweep: Sweep) -> int:
    """Logical CPUs that an embedded Ray needs for `max_concurrent` trials, even where that is
    more than the cores: Ray Train schedules its workers outside the trial's own resources, and
    would otherwise wait forever."""
    threads = threads_per_worker(sweep, embedded=True)
    return sweep.search.max_concurrent * (sweep.train.workers * threads + 1)


def connect_ray(
    target: RayTarget,
    *,
    num_cpus: int = 0,
    offline: bool = False,
    serve: ServeConfig | None = None,
) -> bool:
    """Joins the cluster at `target.address`, else starts an embedded Ray with at least
    `num_cpus` logical CPUs (and at least this machine's cores); returns whether Ray is
    embedded. `offline`: trials read the Hub cache only. `serve`: the settings of what this
    Ray will serve (its ingress), where Ray is embedded."""
    import ray
    from ray.exceptions import AuthenticationError

    if ray.is_initialized():
        return not target.address
    options: dict[str, Any] = {
        "log_to_driver": target.verbose,
        "logging_level": logging.INFO if target.verbose else logging.ERROR,
    }
    if not target.in_job:
        options["runtime_env"] = {"env_vars": trial_env_vars(offline=offline)}
    with _callers_sigterm_kept():
        if target.address:
            try:
                ray.init(address=target.address, **options)
            except (ConnectionError, RuntimeError, ValueError, AuthenticationError) as err:
                raise UserError(
                    f"--address {target.address}: cannot connect to Ray ({err}). If the cluster "
                    "uses token auth (Ray's default), this machine needs its token: "
                    "~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN"
                ) from None
            return False
        for name, value in (serve.ray_environment() if serve else {}).items():
            os.environ.setdefault(name, value)  # what the user set for Ray Serve comes first
        # address="local": a new embedded Ray, even where `ray start` left a cluster here.
        # Without prestart: Ray would start one idle worker per logical CPU at once, more
        # processes than cores here (see cpus_needed), all importing Ray while the first trial
        # starts; the first training step comes ~4 s sooner on 2 cores (bench/cold_start.py).
        ray.init(
            address="local",
            num_cpus=max(os.cpu_count() or 1, num_cpus),
            include_dashboard=False,
            _system_config={"prestart_worker_first_driver": False},
            **options,
        )
    return True


@contextlib.contextmanager
def _callers_sigterm_kept() -> Iterator[None]:
    """`ray.init` replaces the SIGTERM handler with one that exits on the spot, mid-write and
    mid-trial; the caller's own (the CLI stops like Ctrl-C) is put back."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if in_main else None
    try:
        yield
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


class _KnownTuneNoise(logging.Filter):
    """Drops known-harmless or repeated messages of Tune's loggers:
    - its background upload listing the searcher's temporary file, which is renamed before the
      copy reaches it (the next upload copies the renamed file);
    - its warning that snapshots happen often, which every trial that checkpoints at each
      evaluation triggers;
    - a failed trial's traceback, which is in the trial's error.txt, whose path the console
      progress prints;
    - failed uploads for want of disk space, which the runner reports as one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, FileNotFoundError) and "-tmp-" in str(error):
            return False
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return False
        message = record.getMessage()
        return not message.startswith(("Trial task failed", "Experiment state snapshotting"))


TUNE_LOGGERS = ("ray.tune.execution.experiment_state", "ray.tune.execution.tune_controller")


def quiet_tune_logs() -> None:
    """Filters Tune's known noise (once per process)."""
    for name in TUNE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _KnownTuneNoise) for f in logger.filters):
            logger.addFilter(_KnownTuneNoise())
