"""Running and resuming a sweep with Ray Tune.

`run_sweep` prepares the sweep (model and tokenized data, in the driver), connects to Ray (see
`ray_setup`), runs the Tune experiment in `<storage>/<name>/` (a folder or a bucket) and, once
Tune returns, writes the run's results in one pass: Tune's results become plain snapshots
(`tune_results`), then records and a summary (`results`), then files, pushed once.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import ray
from ray import tune
from rich.console import Console

from hpo.core.errors import DiskFull, SweepInterrupted, UserError
from hpo.core.rundir import CURVE, DISK_STOP, SWEEP_COPY, TENSORBOARD
from hpo.core.storage import StorageDir, check_bucket
from hpo.search.algorithms import SearchSettings
from hpo.search.callbacks import ConsoleProgress, DiskGuard, SampleBudget, TensorBoardCallback
from hpo.search.prepare import Prepared, prepare
from hpo.search.ray_setup import (
    RayTarget,
    connect_ray,
    cpus_needed,
    quiet_tune_logs,
    threads_per_worker,
)
from hpo.search.results import (
    Objective,
    TrialSnapshot,
    build_summary,
    make_record,
    samples_trained,
    write_results,
    write_trials,
)
from hpo.search.schedulers import Budget
from hpo.search.space import to_tune_space
from hpo.search.sweep import Sweep
from hpo.search.sweepfile import load_run_sweep, sweep_to_yaml
from hpo.search.tensorboard import TensorBoardLayout
from hpo.search.tune_results import snapshots, snapshots_on_disk
from hpo.trainables.job import TrainJob
from hpo.trainables.trainable import make_trainable

NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device", in a trial's error


def make_job(sweep: Sweep, prepared: Prepared, run: StorageDir, embedded: bool) -> TrainJob:
    """What every trial shares, with the GPU use and launcher resolved against the cluster."""
    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    use_gpu = has_gpus if sweep.train.use_gpu == "auto" else sweep.train.use_gpu
    if use_gpu and not has_gpus:
        raise UserError("train.use_gpu: true, but the Ray cluster has no GPUs; set it to auto")
    launcher = sweep.train.launcher
    if launcher == "auto":
        launcher = "ray_train" if sweep.train.workers > 1 or use_gpu else "in_trial"
    if launcher == "in_trial" and sweep.train.workers > 1:
        raise UserError("train.launcher: in_trial runs one worker; use ray_train for workers > 1")
    return TrainJob(
        model_source=prepared.model_source,
        offline=prepared.offline,
        metric=sweep.metric,
        mode=sweep.mode,
        max_epochs=sweep.scheduler.max_epochs,
        train=sweep.train,
        threads=threads_per_worker(sweep, embedded),
        use_gpu=use_gpu,
        launcher=launcher,
        run_dir=run.location,
        max_failures=sweep.search.max_failures,
    )


def tune_config(sweep: Sweep) -> Any:
    """Tune's side of a sweep: its searcher, scheduler, trial count and concurrency
    (bench/tune_overhead.py runs raw Tune with the very same)."""
    settings = SearchSettings(
        seed=sweep.search.seed,
        n_startup_trials=sweep.search.startup_trials(),
        max_concurrent=sweep.search.max_concurrent,
    )
    budget = Budget(evals_per_epoch=sweep.train.evals_per_epoch, num_trials=sweep.num_trials())
    return tune.TuneConfig(
        metric=sweep.metric,
        mode=sweep.mode,
        search_alg=sweep.algorithm.build(settings),
        scheduler=sweep.scheduler.build(budget),
        num_samples=sweep.search.trials_requested(),
        max_concurrent_trials=sweep.search.max_concurrent,
        time_budget_s=sweep.search.time_budget_s,
        reuse_actors=False,
    )


def _tune_configs(
    sweep: Sweep,
    job: TrainJob,
    run: StorageDir,
    layout: TensorBoardLayout,
    sample_budget: SampleBudget | None,
) -> tuple[Any, Any]:
    run_config = tune.RunConfig(
        name=run.name,
        storage_path=run.parent.location,
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=1,
            checkpoint_score_attribute=sweep.metric,
            checkpoint_score_order=sweep.mode,
        ),
        callbacks=[
            ConsoleProgress(metric=sweep.metric, mode=sweep.mode, max_epochs=job.max_epochs),
            TensorBoardCallback(layout, run=run, metric=sweep.metric, mode=sweep.mode),
            DiskGuard(run, sweep.search.max_concurrent),
        ],
        stop=sample_budget,
        failure_config=tune.FailureConfig(max_failures=sweep.search.max_failures),
        verbose=0,
    )
    return tune_config(sweep), run_config


def new_run_dir(sweep: Sweep, name: str | None = None) -> StorageDir:
    """`<storage>/<name>` (the sweep's name by default), or `<name>-2`, `-3`... when an earlier
    run holds that name."""
    storage = StorageDir.at(sweep.storage)
    check_bucket(storage.location)
    name = name or sweep.name
    run, suffix = storage.child(name), 1
    while run.exists():
        suffix += 1
        run = storage.child(f"{name}-{suffix}")
    return run


def _interrupted(
    sweep: Sweep, on_disk: list[TrialSnapshot], trials_started: int, wall_s: float
) -> bool:
    """Whether Tune's fit returned because of Ctrl-C. Tune returns normally then; what tells is
    its last snapshot on disk (trials still RUNNING or PENDING, while in memory they are already
    stopped), or trials that the search never started although time was left."""
    if any(snapshot.status in ("RUNNING", "PENDING") for snapshot in on_disk):
        return True
    time_left = sweep.search.time_budget_s is None or wall_s < sweep.search.time_budget_s
    return time_left and trials_started < sweep.num_trials()


@dataclass(frozen=True)
class _Experiment:
    """One sweep in its run dir: what Tune's experiment is built from, and what its results
    are written with. `budget_samples` ends a comparison's arm (None for a sweep)."""

    sweep: Sweep
    run: StorageDir
    prepared: Prepared
    job: TrainJob
    budget_samples: int | None = None


def _run_facts(experiment: _Experiment) -> dict[str, Any]:
    """What summary.json records about how the run ran, besides its trials."""
    sweep, prepared, job = experiment.sweep, experiment.prepared, experiment.job
    return {
        "run_dir": experiment.run.location,
        "model": sweep.model,
        "model_source": prepared.model_source,
        "data": {
            **prepared.sources,
            "train_examples": len(prepared.data.train),
            "validation_examples": len(prepared.data.validation),
        },
        "labels": list(prepared.data.labels.names),
        "launcher": job.launcher,
        "workers_per_trial": sweep.train.workers,
        "threads_per_worker": job.threads,
        "use_gpu": job.use_gpu,
        "ray_version": ray.__version__,
        "budget_samples": experiment.budget_samples,
    }


def _finish(experiment: _Experiment, results: Any, wall_s: float) -> dict[str, Any]:
    """Writes the run's results: trials.csv/json while trials are left (and raises
    SweepInterrupted), else those and summary.json; returns the summary."""
    sweep, run, job = experiment.sweep, experiment.run, experiment.job
    objective = Objective(sweep.metric, sweep.mode, job.max_epochs)
    # The results Tune holds in memory have every trial's final status; its last snapshot on
    # disk can lag behind (a trial Hyperband paused at its last rung still shows PAUSED).
    final = snapshots(results)
    _check_disk_space(run, final)
    disk_stop = _take_disk_stop(run)
    budget = experiment.budget_samples
    budget_spent = budget is not None and samples_trained(final) >= budget
    on_disk = [] if budget_spent else snapshots_on_disk(run)
    if not budget_spent and _interrupted(sweep, on_disk, len(results), wall_s):
        records = [make_record(s, objective, sweep_over=False) for s in on_disk]
        write_trials(run, records, sweep.metric)
        if disk_stop is not None:
            free, needed = disk_stop
            raise _disk_full(
                run,
                f"has {free:.0f} MB left, less than the {needed:.0f} MB the "
                "next checkpoints need: the sweep stopped before running out",
            )
        raise SweepInterrupted(
            f"the sweep stopped before its trials ended; continue it with `hpo resume {run}`"
        )
    records = [make_record(s, objective, sweep_over=True) for s in final]
    summary = build_summary(
        records,
        name=sweep.name,
        objective=objective,
        algorithm=sweep.search.algorithm,
        scheduler=sweep.scheduler.name,
        wall_s=wall_s,
        extra=_run_facts(experiment),
    )
    write_results(run, records, summary)
    return summary


def _restore_tuner(run: StorageDir, trainable: Any) -> Any:
    """Tune's experiment of an interrupted run, with a clear error for run dirs whose saved
    state names modules of hpo before 0.2 (`search.`, `trainables.`), which no longer exist."""
    if not tune.Tuner.can_restore(run.location):
        raise UserError(f"{run}: no Tune experiment state to resume from")
    try:
        return tune.Tuner.restore(run.location, trainable=trainable, resume_errored=True)
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] in ("search", "trainables", "serve", "cluster"):
            raise UserError(
                f"{run} was started by hpo before 0.2, whose modules were renamed "
                f"(hpo.{err.name}); it cannot be resumed, but its finished results can be "
                "read, served and reported. Run the sweep again to finish it."
            ) from None
        raise


def _disk_full(run: StorageDir, why: str = "is full (no space left on device)") -> DiskFull:
    return DiskFull(
        f"the disk that holds {run} {why}; free some space, then continue the sweep with "
        f"`hpo resume {run}`"
    )


def _no_space_left(run: StorageDir) -> bool:
    """Whether the disk of the run dir (its local folder) cannot take another megabyte."""
    try:
        with tempfile.TemporaryFile(dir=run.local) as probe:
            probe.write(b"\0" * 1_000_000)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        return err.errno == errno.ENOSPC
    return False


def _take_disk_stop(run: StorageDir) -> tuple[float, float] | None:
    """The free and needed MB that DiskGuard recorded when it stopped the sweep, if it did;
    the marker is removed, so that a later stop is not taken for a full disk."""
    marker = run.local / DISK_STOP
    if not marker.is_file():
        return None
    free, needed = (int(n) / 1e6 for n in marker.read_text().split())
    marker.unlink()
    return free, needed


def _check_disk_space(run: StorageDir, final: list[TrialSnapshot]) -> None:
    """Trials that failed for want of disk space stop the sweep, to be resumed: they would
    fail again, and a summary written now would end a sweep that can still finish."""
    if any(s.status == "ERROR" and NO_SPACE in (s.error or "") for s in final):
        raise _disk_full(run)


def _fit(tuner: Any, experiment: _Experiment) -> dict[str, Any]:
    """Runs Tune's experiment to its end (or Ctrl-C), then writes the run's results."""
    quiet_tune_logs()
    started = time.perf_counter()
    try:
        results = tuner.fit()
        return _finish(experiment, results, time.perf_counter() - started)
    except DiskFull:
        raise
    except Exception:
        # A full disk surfaces anywhere (a truncated file Tune reads back, a failed write):
        # whatever failed, a full disk is what the user must fix first.
        if _no_space_left(experiment.run):
            raise _disk_full(experiment.run) from None
        raise


def run_sweep(
    sweep: Sweep, *, target: RayTarget | None = None, console: Console | None = None
) -> dict[str, Any]:
    """Runs a sweep to the end; returns its summary (also in `<run_dir>/summary.json`)."""
    target = target or RayTarget()
    prepared = prepare(sweep)
    embedded = connect_ray(target, num_cpus=cpus_needed(sweep), offline=prepared.offline)
    return run_prepared(
        sweep, prepared, new_run_dir(sweep), embedded=embedded, console=console or Console()
    )


def run_prepared(
    sweep: Sweep,
    prepared: Prepared,
    run: StorageDir,
    *,
    embedded: bool,
    console: Console,
    layout: TensorBoardLayout | None = None,
    budget_samples: int | None = None,
) -> dict[str, Any]:
    """Runs a sweep whose data is tokenized, on a connected Ray, in a new run dir; a comparison
    runs each of its arms this way, with a shared TensorBoard layout and a sample budget."""
    job = make_job(sweep, prepared, run, embedded)
    run.start_fresh()
    run.write_text(SWEEP_COPY, sweep_to_yaml(sweep))
    run.push(SWEEP_COPY)
    console.print(
        f"[bold]{sweep.name}[/]: {sweep.num_trials()} trials, {sweep.search.algorithm} search, "
        f"{sweep.scheduler.name} scheduler, {len(prepared.data.train)} training examples, "
        f"{job.launcher} with {sweep.train.workers} worker(s) x {job.threads} thread(s)"
        f"{' on GPU' if job.use_gpu else ''}\nrun dir: {run}"
    )
    budget = None if budget_samples is None else SampleBudget(budget_samples, run.location)
    tune_config, run_config = _tune_configs(
        sweep, job, run, layout or TensorBoardLayout(run), budget
    )
    tuner = tune.Tuner(
        make_trainable(job, prepared.data),
        param_space=to_tune_space(sweep.space, grid_choices=sweep.algorithm.choices_as_grid),
        tune_config=tune_config,
        run_config=run_config,
    )
    return _fit(tuner, _Experiment(sweep, run, prepared, job, budget_samples))


def resume_prepared(
    sweep: Sweep,
    prepared: Prepared,
    run: StorageDir,
    *,
    embedded: bool,
    console: Console,
    budget_samples: int | None = None,
) -> dict[str, Any]:
    """Continues an interrupted run on a connected Ray: finished trials keep their results,
    unfinished ones restart from their last checkpoint, the searcher from its saved state."""
    # The TensorBoard logger appends to the logs and the curve where the first run left them.
    run.pull(TENSORBOARD, CURVE)
    job = make_job(sweep, prepared, run, embedded)
    console.print(f"resuming [bold]{sweep.name}[/] in {run}")
    tuner = _restore_tuner(run, make_trainable(job, prepared.data))
    return _fit(tuner, _Experiment(sweep, run, prepared, job, budget_samples))


def resume_sweep(
    run: StorageDir, *, target: RayTarget | None = None, console: Console | None = None
) -> dict[str, Any]:
    """Continues an interrupted sweep from its run dir."""
    sweep = load_run_sweep(run)
    prepared = prepare(sweep)
    embedded = connect_ray(
        target or RayTarget(), num_cpus=cpus_needed(sweep), offline=prepared.offline
    )
    return resume_prepared(sweep, prepared, run, embedded=embedded, console=console or Console())
