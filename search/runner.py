"""Running, resuming and summarising a sweep with Ray Tune.

`run_sweep` reads the data and tokenizes it once (in the driver, before any trial), connects to
Ray (an embedded single-node cluster, or `--address`/`RAY_ADDRESS`), runs the Tune experiment in
`<storage>/<name>/` (a folder or a bucket, see search.storage) and writes `trials.csv` and
`summary.json` there.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from search.algorithms import SearchSettings
from search.compute import CURVE, SampleBudget
from search.results import (
    TRIALS,
    build_summary,
    load_records,
    records_from_analysis,
    write_results,
    write_trials_csv,
)
from search.schedulers import Budget
from search.space import to_tune_space
from search.storage import StorageDir, check_bucket
from search.sweep import Sweep, load_sweep, sweep_to_yaml
from search.tensorboard import TENSORBOARD, TensorBoardLayout, TensorBoardLogger
from trainables.data import load_splits
from trainables.encoding import EncodedData, encode
from trainables.errors import SweepInterrupted, UserError
from trainables.job import TrainJob
from trainables.models import check_model, hub_reachable, resolve_model

SWEEP_COPY = "sweep.yaml"
"""The resolved sweep file, saved in the run dir: what `hpo resume` and `hpo status` read."""


@dataclass
class Prepared:
    """What the driver builds once per sweep and every trial shares."""

    model_source: str
    data: EncodedData
    sources: dict[str, str]


def prepare(sweep: Sweep) -> Prepared:
    """Resolves the model and tokenizes every split: user errors surface before Ray starts."""
    from transformers import AutoTokenizer

    model_source = resolve_model(sweep.model)
    offline = not Path(model_source).is_dir() and not hub_reachable()
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"  # the trials read the Hub cache only (runtime_env)
    check_model(model_source, sweep.model, offline=offline)
    splits = load_splits(sweep.data)
    tokenizer = AutoTokenizer.from_pretrained(model_source, local_files_only=offline)
    data = encode(splits, tokenizer, sweep.train.max_length)
    return Prepared(model_source=model_source, data=data, sources=splits.sources)


class _BenignSyncRace(logging.Filter):
    """Drops one known-harmless Ray Tune error: its background upload of the experiment state
    lists the searcher's temporary file, which is renamed before the copy reaches it. The next
    upload (and the forced one at the end of the sweep) copies the renamed file."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, FileNotFoundError) and "-tmp-" in str(error))


def _quiet_tune_output() -> None:
    """Tune's own tables and snapshot-frequency warnings would drown ConsoleProgress's lines."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    logger = logging.getLogger("ray.tune.execution.experiment_state")
    if not any(isinstance(f, _BenignSyncRace) for f in logger.filters):
        logger.addFilter(_BenignSyncRace())


IN_JOB = "HPO_IN_RAY_JOB"
"""Set in the runtime env of sweeps submitted as Ray Jobs."""


def trial_env_vars() -> dict[str, str]:
    """Environment of every trial process: quiet libraries, and the driver's data and Hub
    settings."""
    return {
        "TRANSFORMERS_VERBOSITY": "error",
        "TQDM_DISABLE": "1",
        **{k: os.environ[k] for k in ("HF_HUB_OFFLINE", "HPO_DATA") if k in os.environ},
    }


def _threads_per_worker(sweep: Sweep, embedded: bool) -> int:
    if sweep.train.cpus_per_worker != "auto":
        return sweep.train.cpus_per_worker
    if not embedded:
        return 1
    sharing = sweep.search.max_concurrent * sweep.train.workers
    return max(1, (os.cpu_count() or 1) // sharing)


def connect_ray(sweep: Sweep, address: str | None, verbose: bool) -> bool:
    """Joins the cluster at `address` (or RAY_ADDRESS), else starts an embedded one.

    Returns whether Ray is embedded. The embedded cluster gets enough logical CPUs for
    `max_concurrent` trials even where that is more than the cores: Ray Train schedules its
    workers outside the trial's own resources, and would otherwise wait forever.
    """
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return not address
    options: dict[str, Any] = {
        "log_to_driver": verbose,
        "logging_level": logging.INFO if verbose else logging.ERROR,
    }
    if IN_JOB in os.environ:
        # The job's runtime env (cluster/jobs.py) already carries trial_env_vars(); Ray would
        # not merge a second one. And Ray may unpack the job's working dir anew as trials
        # start, which would leave this driver in a deleted directory: leave it (the sweep
        # file is read, and the job made every path absolute).
        os.chdir(tempfile.gettempdir())
    else:
        options["runtime_env"] = {"env_vars": trial_env_vars()}
    if address:
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise UserError(f"--address {address}: cannot connect to Ray ({err})") from None
        return False
    threads = _threads_per_worker(sweep, embedded=True)
    needed = sweep.search.max_concurrent * (sweep.train.workers * threads + 1)
    # address="local": a new embedded Ray, even where `ray start` left a cluster on this machine
    ray.init(address="local", num_cpus=max(os.cpu_count() or 1, needed),
             include_dashboard=False, **options)
    return True


def make_job(sweep: Sweep, prepared: Prepared, run: StorageDir, embedded: bool) -> TrainJob:
    import ray

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
        metric=sweep.metric,
        mode=sweep.mode,
        max_epochs=sweep.scheduler.max_epochs,
        train=sweep.train,
        threads=_threads_per_worker(sweep, embedded),
        use_gpu=use_gpu,
        launcher=launcher,
        run_dir=run.location,
    )


def _tune_configs(
    sweep: Sweep, job: TrainJob, run: StorageDir, layout: TensorBoardLayout,
    sample_budget: SampleBudget | None,
):
    from ray import tune

    from search.progress import ConsoleProgress

    algorithm = sweep.algorithm
    settings = SearchSettings(
        seed=sweep.search.seed,
        num_samples=sweep.search.trials_requested(),
        n_startup_trials=sweep.search.startup_trials(),
        max_concurrent=sweep.search.max_concurrent,
    )
    budget = Budget(evals_per_epoch=sweep.train.evals_per_epoch, num_trials=sweep.num_trials())
    tune_config = tune.TuneConfig(
        metric=sweep.metric,
        mode=sweep.mode,
        search_alg=algorithm.build(settings),
        scheduler=sweep.scheduler.build(budget),
        num_samples=sweep.search.trials_requested(),
        max_concurrent_trials=sweep.search.max_concurrent,
        time_budget_s=sweep.search.time_budget_s,
        reuse_actors=False,
    )
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
            TensorBoardLogger(layout, run=run, metric=sweep.metric, mode=sweep.mode),
        ],
        stop=sample_budget,
        verbose=0,
    )
    return tune_config, run_config


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
    sweep: Sweep, run: StorageDir, analysis, wall_s: float, sample_budget: SampleBudget | None
) -> bool:
    """Whether Tune's fit returned because of Ctrl-C. Tune returns normally then; what tells is
    its last snapshot on disk (trials still RUNNING or PENDING, while in memory they are already
    stopped), or trials that the search never started although time was left."""
    from ray.tune import ExperimentAnalysis

    if sample_budget is not None and sample_budget.stop_all():
        return False
    if any(t.status in ("RUNNING", "PENDING") for t in ExperimentAnalysis(run.location).trials):
        return True
    budget = sweep.search.time_budget_s
    time_left = budget is None or wall_s < budget
    return time_left and len(analysis.trials) < sweep.num_trials()


def _finish(
    sweep: Sweep, run: StorageDir, prepared: Prepared, job: TrainJob, analysis, wall_s: float,
    budget: SampleBudget | None,
) -> dict[str, Any]:
    """Writes trials.csv, and summary.json once every trial has ended."""
    import ray

    if _interrupted(sweep, run, analysis, wall_s, budget):
        records = load_records(
            run, metric=sweep.metric, mode=sweep.mode, max_epochs=job.max_epochs,
            sweep_over=False,
        )
        write_trials_csv(records, run.local / TRIALS, sweep.metric)
        run.push(TRIALS)
        raise SweepInterrupted(
            f"the sweep stopped before its trials ended; continue it with `hpo resume {run}`"
        )
    records = records_from_analysis(
        analysis, run, metric=sweep.metric, mode=sweep.mode, max_epochs=job.max_epochs,
        sweep_over=True,
    )
    summary = build_summary(
        records,
        name=sweep.name,
        metric=sweep.metric,
        mode=sweep.mode,
        algorithm=sweep.search.algorithm,
        scheduler=sweep.scheduler.name,
        wall_s=wall_s,
        extra={
            "run_dir": run.location,
            "model": sweep.model,
            "model_source": prepared.model_source,
            "data": {**prepared.sources, "train_examples": len(prepared.data.train),
                     "validation_examples": len(prepared.data.validation)},
            "labels": list(prepared.data.labels.names),
            "launcher": job.launcher,
            "workers_per_trial": sweep.train.workers,
            "threads_per_worker": job.threads,
            "use_gpu": job.use_gpu,
            "ray_version": ray.__version__,
            "budget_samples": None if budget is None else budget.samples,
        },
    )
    write_results(run, records, summary)
    return summary


def _fit(
    sweep: Sweep, run: StorageDir, prepared: Prepared, job: TrainJob, *, resume: bool,
    layout: TensorBoardLayout | None = None, budget_samples: int | None = None,
) -> dict[str, Any]:
    from ray import tune

    from trainables.trainable import make_trainable

    _quiet_tune_output()
    trainable = make_trainable(job, prepared.data)
    started = time.perf_counter()
    budget = None if budget_samples is None else SampleBudget(budget_samples)
    if resume:
        tuner = tune.Tuner.restore(run.location, trainable=trainable, resume_errored=True)
    else:
        layout = layout or TensorBoardLayout(run)
        tune_config, run_config = _tune_configs(sweep, job, run, layout, budget)
        tuner = tune.Tuner(
            trainable,
            param_space=to_tune_space(sweep.space, grid_choices=sweep.algorithm.choices_as_grid),
            tune_config=tune_config,
            run_config=run_config,
        )
    results = tuner.fit()
    # The analysis Tune holds in memory has every trial's final status; its last snapshot on
    # disk can lag behind (a trial Hyperband paused at its last rung still shows PAUSED).
    analysis = results._experiment_analysis
    return _finish(sweep, run, prepared, job, analysis, time.perf_counter() - started, budget)


def run_sweep(
    sweep: Sweep, *, address: str | None = None, console: Console | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Runs a sweep to the end; returns its summary (also in `<run_dir>/summary.json`)."""
    console = console or Console()
    prepared = prepare(sweep)
    embedded = connect_ray(sweep, address, verbose)
    return run_prepared(sweep, prepared, new_run_dir(sweep), embedded=embedded, console=console)


def run_prepared(
    sweep: Sweep, prepared: Prepared, run: StorageDir, *, embedded: bool, console: Console,
    layout: TensorBoardLayout | None = None, budget_samples: int | None = None,
) -> dict[str, Any]:
    """Runs a sweep whose data is tokenized, on a connected Ray, in a new run dir; a comparison
    runs each of its arms this way, with a shared TensorBoard layout and a sample budget."""
    job = make_job(sweep, prepared, run, embedded)
    run.start_fresh()
    (run.local / SWEEP_COPY).write_text(sweep_to_yaml(sweep))
    run.push(SWEEP_COPY)
    console.print(
        f"[bold]{sweep.name}[/]: {sweep.num_trials()} trials, {sweep.search.algorithm} search, "
        f"{sweep.scheduler.name} scheduler, {len(prepared.data.train)} training examples, "
        f"{job.launcher} with {sweep.train.workers} worker(s) x {job.threads} thread(s)"
        f"{' on GPU' if job.use_gpu else ''}\nrun dir: {run}"
    )
    return _fit(
        sweep, run, prepared, job, resume=False, layout=layout, budget_samples=budget_samples
    )


def resume_sweep(
    run: StorageDir, *, address: str | None = None, console: Console | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Continues an interrupted sweep: unfinished trials restart from their last checkpoint."""
    console = console or Console()
    sweep = load_run_sweep(run)
    from ray import tune

    if not tune.Tuner.can_restore(run.location):
        raise UserError(f"{run}: no Tune experiment state to resume from")
    # The TensorBoard logger appends to the logs and the curve where the first run left them.
    run.pull(TENSORBOARD, CURVE)
    prepared = prepare(sweep)
    embedded = connect_ray(sweep, address, verbose)
    job = make_job(sweep, prepared, run, embedded)
    console.print(f"resuming [bold]{sweep.name}[/] in {run}")
    return _fit(sweep, run, prepared, job, resume=True)


def load_run_sweep(run: StorageDir) -> Sweep:
    """The resolved sweep file that a run dir was started with."""
    run.pull(SWEEP_COPY)
    path = run.local / SWEEP_COPY
    if not path.is_file():
        raise UserError(f"{run} is not a run dir of hpo (it has no {SWEEP_COPY})")
    return load_sweep(path)
