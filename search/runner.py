"""Running and resuming a sweep with Ray Tune.

`run_sweep` prepares the sweep (model and tokenized data, in the driver), connects to Ray (see
`ray_setup`), runs the Tune experiment in `<storage>/<name>/` (a folder or a bucket) and, once
Tune returns, writes the run's results in one pass: Tune's results become plain snapshots
(`tune_results`), then records and a summary (`results`), then files, pushed once.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ray
from ray import tune
from rich.console import Console

from hpo.core.errors import DiskFull, SweepInterrupted, UserError
from hpo.core.rundir import BEFORE_EXTEND, CURVE, DISK_STOP, SUMMARY, SWEEP_COPY, TENSORBOARD
from hpo.core.storage import StorageDir, check_bucket
from hpo.search.algorithms import SearchSettings
from hpo.search.callbacks import ConsoleProgress, DiskGuard, SampleBudget, TensorBoardCallback
from hpo.search.compute import read_curve
from hpo.search.pareto import front_summary
from hpo.search.prepare import Prepared, prepare
from hpo.search.ray_compat import deciding_on, result_loggers
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
    read_before_extend,
    read_summary,
    read_trials,
    samples_trained,
    write_results,
    write_trials,
)
from hpo.search.schedulers import PopulationConfig, SchedulerInputs, is_population
from hpo.search.space import PastTrial, past_trials, to_tune_space
from hpo.search.sweep import Sweep
from hpo.search.sweepfile import load_run_sweep, load_sweep, sweep_to_yaml
from hpo.search.tensorboard import TensorBoardLayout
from hpo.search.tune_results import snapshots, snapshots_on_disk
from hpo.trainables.job import ServingProbe, TrainJob
from hpo.trainables.metrics import mode_of
from hpo.trainables.trainable import make_trainable

if TYPE_CHECKING:
    from hpo.serve.config import ServeConfig

NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device", in a trial's error


def make_job(sweep: Sweep, prepared: Prepared, run: StorageDir, embedded: bool) -> TrainJob:
    """What every trial shares, with the GPU use and launcher resolved against the cluster."""
    has_gpus = ray.cluster_resources().get("GPU", 0) > 0
    use_gpu = has_gpus if sweep.train.use_gpu == "auto" else sweep.train.use_gpu
    if use_gpu and not has_gpus:
        raise UserError("train.use_gpu: true, but the Ray cluster has no GPUs; set it to auto")
    launcher = sweep.train.launcher
    if launcher == "auto":
        # PBT hands a trial another trial's checkpoint through Tune, which only a trial that
        # trains in its own process takes
        ray_train = sweep.train.workers > 1 or (use_gpu and not is_population(sweep.scheduler.name))
        launcher = "ray_train" if ray_train else "in_trial"
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
        serving=serving_probe(sweep.serve) if sweep.costs else None,
    )


def serving_probe(serve: ServeConfig) -> ServingProbe:
    """How each trial measures its serving costs: as the `serve:` section will run it."""
    return ServingProbe(
        threads=serve.replica_threads,
        batch_size=serve.max_batch_size,
        runtime=serve.runtime,
    )


def tune_config(sweep: Sweep, prior: list[PastTrial] | None = None) -> Any:
    """Tune's side of a sweep: its searcher (started from `prior`'s trials), scheduler, trial
    count and concurrency (bench/tune_overhead.py runs raw Tune with the very same)."""
    settings = SearchSettings(
        seed=sweep.search.seed,
        n_startup_trials=sweep.search.startup_trials(),
        max_concurrent=sweep.search.max_concurrent,
        metric=sweep.metric,
        mode=sweep.mode,
        space=sweep.space,
        prior=prior or [],
        costs=sweep.costs,
    )
    inputs = SchedulerInputs(
        evals_per_epoch=sweep.train.evals_per_epoch,
        num_trials=sweep.num_trials(),
        space=sweep.space,
        seed=sweep.search.seed,
    )
    scheduler = sweep.scheduler.build(inputs)
    if sweep.scheduler_metric != sweep.metric:
        scheduler = deciding_on(scheduler, sweep.scheduler_metric, mode_of(sweep.scheduler_metric))
    return tune.TuneConfig(
        metric=sweep.metric,
        mode=sweep.mode,
        search_alg=sweep.algorithm.build(settings),
        scheduler=scheduler,
        num_samples=sweep.search.trials_requested(),
        max_concurrent_trials=sweep.search.max_concurrent,
        time_budget_s=sweep.search.time_budget_s,
        # A trial's process outlives it: the next trial skips a worker start and the imports of
        # torch and transformers (seconds a trial here), and PBT/PB2 restart every trial at every
        # perturbation point. Each trial sets its own seed, threads and model.
        reuse_actors=True,
    )


@dataclass(frozen=True)
class Start:
    """What a sweep starts from besides its sweep file: finished trials for its searcher
    (`warm_start`, `hpo extend`) and, when it extends a run, where that run's curve ended."""

    prior: list[PastTrial] = field(default_factory=list)
    curve: dict[str, Any] | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    """What summary.json says about it."""


def _warm_start(sweep: Sweep) -> Start:
    """The finished trials of `warm_start`'s run dir that fit this sweep's space."""
    if sweep.warm_start is None:
        return Start()
    source = StorageDir.at(sweep.warm_start)
    trials = read_trials(source)
    if not trials:
        raise UserError(f"warm_start: {source} has no finished trials (no trials.json)")
    prior, left_out = past_trials(trials, sweep.space)
    if not prior:
        raise UserError(
            f"warm_start: none of the {len(trials)} trials of {source} fits this sweep's space"
        )
    facts = {"run_dir": source.location, "trials": len(prior), "left_out": left_out}
    return Start(prior=prior, facts={"warm_start": facts})


def tracked_hyperparameters(sweep: Sweep) -> tuple[str, ...]:
    """The hyperparameters that change during a trial: those PBT or PB2 perturbs."""
    if isinstance(sweep.scheduler, PopulationConfig):
        return tuple(sweep.scheduler.mutated(sweep.space))
    return ()


def param_space(sweep: Sweep) -> dict[str, Any]:
    """Tune's `param_space`: the space, or nothing when the searcher owns it."""
    if sweep.searcher_owns_space:
        return {}
    return to_tune_space(sweep.space, grid_choices=sweep.algorithm.choices_as_grid)


def _tune_configs(
    sweep: Sweep,
    job: TrainJob,
    run: StorageDir,
    layout: TensorBoardLayout,
    sample_budget: SampleBudget | None,
    start: Start,
) -> tuple[Any, Any]:
    tensorboard = TensorBoardCallback(layout, run=run, metric=sweep.metric, mode=sweep.mode)
    if start.curve is not None:
        tensorboard.writer.set_state(start.curve)
    run_config = tune.RunConfig(
        name=run.name,
        storage_path=run.parent.location,
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=sweep.scheduler.checkpoints_kept,
            checkpoint_score_attribute=sweep.metric,
            checkpoint_score_order=sweep.mode,
        ),
        callbacks=[
            ConsoleProgress(metric=sweep.metric, mode=sweep.mode, max_epochs=job.max_epochs),
            tensorboard,
            DiskGuard(run, sweep.search.max_concurrent),
            *result_loggers(),
        ],
        stop=sample_budget,
        failure_config=tune.FailureConfig(max_failures=sweep.search.max_failures),
        verbose=0,
    )
    return tune_config(sweep, start.prior), run_config


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
    facts: dict[str, Any] = field(default_factory=dict)


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
        **experiment.facts,
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
    before = read_before_extend(run)
    if not budget_spent and _interrupted(sweep, on_disk, len(results), wall_s):
        records = [make_record(s, objective, sweep_over=False) for s in on_disk]
        write_trials(run, before.records + records, sweep.metric)
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
    added = [make_record(s, objective, sweep_over=True) for s in final]
    records = before.records + added
    summary = build_summary(
        records,
        name=sweep.name,
        objective=objective,
        algorithm=sweep.search.algorithm,
        scheduler=sweep.scheduler.name,
        wall_s=before.wall_s + wall_s,
        extra={**_run_facts(experiment), **before.facts(len(added))},
    )
    if sweep.costs:  # the front, and the point of it that serve.select deploys as `best`
        rule = sweep.serve.select.model_dump(exclude_none=True) if sweep.serve.select else None
        summary.update(front_summary(records, sweep.objectives, rule))
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
    embedded = connect_ray(
        target, num_cpus=cpus_needed(sweep), offline=prepared.offline, serve=sweep.serve
    )
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
    start = _warm_start(sweep)
    run.start_fresh()
    return _run_in(sweep, prepared, run, start, embedded, console, layout, budget_samples)


def _run_in(
    sweep: Sweep,
    prepared: Prepared,
    run: StorageDir,
    start: Start,
    embedded: bool,
    console: Console,
    layout: TensorBoardLayout | None = None,
    budget_samples: int | None = None,
) -> dict[str, Any]:
    """Runs a new Tune experiment in `run` (a fresh run dir, or one `hpo extend` continues)."""
    job = make_job(sweep, prepared, run, embedded)
    run.write_text(SWEEP_COPY, sweep_to_yaml(sweep))
    run.push(SWEEP_COPY)
    console.print(
        f"[bold]{sweep.name}[/]: {sweep.num_trials()} trials, {sweep.search.algorithm} search, "
        f"{sweep.scheduler_summary}, {len(prepared.data.train)} training examples, "
        f"{job.launcher} with {sweep.train.workers} worker(s) x {job.threads} thread(s)"
        f"{' on GPU' if job.use_gpu else ''}\nrun dir: {run}"
    )
    budget = None if budget_samples is None else SampleBudget(budget_samples, run.location)
    if start.prior:
        console.print(f"the searcher starts from {len(start.prior)} finished trials")
    tune_config, run_config = _tune_configs(
        sweep,
        job,
        run,
        layout or TensorBoardLayout(run, tracked=tracked_hyperparameters(sweep)),
        budget,
        start,
    )
    tuner = tune.Tuner(
        make_trainable(job, prepared.data),
        param_space=param_space(sweep),
        tune_config=tune_config,
        run_config=run_config,
    )
    experiment = _Experiment(sweep, run, prepared, job, budget_samples, start.facts)
    return _fit(tuner, experiment)


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
        target or RayTarget(),
        num_cpus=cpus_needed(sweep),
        offline=prepared.offline,
        serve=sweep.serve,
    )
    return resume_prepared(sweep, prepared, run, embedded=embedded, console=console or Console())


def extend_sweep(
    run: StorageDir,
    *,
    add_trials: int,
    max_epochs: float | None = None,
    overrides: list[str] | None = None,
    target: RayTarget | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """`hpo extend`: more trials in a finished sweep's run dir. Its searcher starts from every
    past trial (model-based ones model them before their first suggestion), the trials that
    ended are not run again, and the results, the curve and TensorBoard go on from where the
    sweep ended. `max_epochs`: how long the new trials train."""
    console = console or Console()
    base = load_run_sweep(run)  # says so when `run` is no run dir
    summary = read_summary(run)
    if summary is None:
        raise UserError(
            f"{run}: the sweep has not finished (no {SUMMARY}); finish it with "
            f"`hpo resume {run}`, then extend it"
        )
    if base.costs:
        raise UserError(
            f"{run}: a sweep of several metrics ({', '.join(n for n, _ in base.objectives)}) "
            "cannot be extended yet; run a new sweep with more trials"
        )
    trials = read_trials(run)
    sets = [
        *(overrides or []),
        f"search.num_samples={add_trials}",
        f"search.seed={base.search.seed + len(trials)}",  # random search draws new points
        "warm_start=null",
    ]
    if max_epochs is not None:
        sets.append(f"scheduler.max_epochs={max_epochs}")
    sweep = load_sweep(run.local / SWEEP_COPY, sets)
    if not sweep.algorithm.takes_prior and sweep.search.algorithm != "random":
        raise UserError(
            f"search.algorithm: {sweep.search.algorithm} cannot go on from past trials; "
            "extend a sweep of tpe, gp, hyperopt or random, or start a new sweep"
        )
    prior, left_out = past_trials(trials, sweep.space)
    prepared = prepare(sweep)
    embedded = connect_ray(
        target or RayTarget(),
        num_cpus=cpus_needed(sweep),
        offline=prepared.offline,
        serve=sweep.serve,
    )
    extensions = read_before_extend(run).extensions
    extension = {"trials_before": len(trials), "prior": len(prior), "left_out": left_out}
    run.write_text(
        BEFORE_EXTEND,
        json.dumps(
            {"trials": trials, "wall_s": summary["wall_s"], "extensions": [*extensions, extension]},
            default=str,
        ),
    )
    run.push(BEFORE_EXTEND)
    # running again: status follows the new trials, and an interrupted extension is resumed
    (run.local / SUMMARY).unlink(missing_ok=True)
    run.remove_files(SUMMARY)
    run.pull(TENSORBOARD, CURVE)
    points = read_curve(run.local / CURVE)
    curve = {
        "tracker": {
            "per_trial": {t["trial_id"]: t["samples"] for t in trials},
            "best": points[-1].best if points else None,
            "seconds": points[-1].seconds if points else summary["wall_s"],
            "points": len(points),
        },
        "trial_best": {},
    }
    console.print(f"extending [bold]{sweep.name}[/] in {run}: {add_trials} more trials")
    return _run_in(sweep, prepared, run, Start(prior=prior, curve=curve), embedded, console)
