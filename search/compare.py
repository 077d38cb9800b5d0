"""`hpo compare`: runs every algorithm x scheduler x seed ("arms") on the same model, data and
search space under the same training budget, one after the other on one Ray, and writes one
comparison dir:

    <storage>/<name>-compare/
        compare.json      the plan: budget, metric, and every arm with its run dir
        arms/<arm>/       each arm is an ordinary run dir (summary.json, trials.csv, curve.csv)
        tensorboard/      one log dir for all arms (layout in hpo.search.tensorboard)
        report.md, *.png  written at the end by hpo.search.report

Fairness comes from what the arms share: the tokenized data, the space (discretised for grid
search), the budget in training samples, enforced by a Tune stopper, and the seeds: seed k
seeds both the search and the training of every arm that runs with it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import yaml
from ray import tune
from rich.console import Console

from hpo.core.errors import SweepInterrupted, UserError
from hpo.core.rundir import ARMS, PLAN, SWEEP_COPY, TRAINING_STATE
from hpo.core.storage import StorageDir
from hpo.search.prepare import Prepared, prepare
from hpo.search.ray_setup import RayTarget, connect_ray, cpus_needed
from hpo.search.report import read_plan, write_comparison_report
from hpo.search.results import read_summary
from hpo.search.runner import (
    new_run_dir,
    resume_prepared,
    run_prepared,
    tracked_hyperparameters,
)
from hpo.search.schedulers import (
    SCHEDULERS,
    PopulationConfig,
    SchedulerInputs,
    SuccessiveHalvingConfig,
    is_population,
)
from hpo.search.space import Dimension, as_grid
from hpo.search.sweep import Sweep
from hpo.search.sweepfile import load_sweep, parse_sweep, sweep_to_yaml
from hpo.search.tensorboard import TensorBoardLayout


@dataclass(frozen=True)
class Arm:
    """One algorithm with one scheduler and one seed."""

    algorithm: str
    scheduler: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.algorithm}-{self.scheduler}-seed{self.seed}"

    @property
    def section(self) -> str:
        """Its TensorBoard section: the charts where the algorithms are overlaid."""
        return f"{self.scheduler}/seed_{self.seed}"


def plan_arms(sweep: Sweep) -> list[Arm]:
    """Seeds outermost, so that a comparison cut short still has every algorithm at seed 0,
    and machine noise spreads evenly over the algorithms. PBT evolves a population that random
    search samples: PBT and PB2 run with random only."""
    if sweep.costs:
        raise UserError(
            f"hpo compare ranks arms on one metric; this sweep has several "
            f"({', '.join(name for name, _ in sweep.objectives)}): write metric: {sweep.metric}"
        )
    schedulers = sweep.compare.schedulers or [sweep.scheduler.name]
    return [
        Arm(algorithm, scheduler, seed)
        for seed in range(sweep.compare.seeds)
        for scheduler in schedulers
        for algorithm in sweep.compare.algorithms
        if not is_population(scheduler) or algorithm == "random"
    ]


SHARED_SETTINGS = ("grace_period", "reduction_factor", "metric")
"""Settings another scheduler takes from the sweep's, where both have them: ASHA against
Hyperband halves at the same rate (at its default of 3 on 4 reports, Hyperband has a single
bracket that stops anything: 2 trials after their first report), comparing trials on the same
metric."""


def _scheduler(sweep: Sweep, name: str) -> Any:
    """The sweep's own scheduler when it is the one named, else that scheduler with its
    defaults, the sweep's max_epochs and the settings in SHARED_SETTINGS it has."""
    if name == sweep.scheduler.name:
        return sweep.scheduler
    cls = SCHEDULERS[name]
    settings: dict[str, Any] = {"name": name, "max_epochs": sweep.scheduler.max_epochs}
    for setting in SHARED_SETTINGS:
        value = getattr(sweep.scheduler, setting, None)
        if value is not None and setting in cls.model_fields:
            settings[setting] = value
    return cls.model_validate(settings)


def _num_samples(sweep: Sweep, arm: Arm, scheduler: Any, budget: int, train_examples: int) -> int:
    """Trials an arm may start: grid runs its grid once; synchronous successive halving runs
    one bracket sized to the budget; the others get more than the budget can ever pay for
    (every trial costs at least one report's samples), so the budget ends them."""
    samples_per_report = train_examples / sweep.train.evals_per_epoch
    if arm.algorithm == "grid":
        return 1
    if isinstance(scheduler, PopulationConfig):  # a population that trains the budget to the end
        return max(2, math.ceil(budget / (train_examples * scheduler.max_epochs)))
    if isinstance(scheduler, SuccessiveHalvingConfig):
        reports = budget / samples_per_report
        return scheduler.trials_within(reports, SchedulerInputs(sweep.train.evals_per_epoch, 0))
    return math.ceil(budget / samples_per_report) + 1


def arm_sweep(
    sweep: Sweep, arm: Arm, budget: int, train_examples: int, storage: StorageDir
) -> Sweep:
    """The sweep that one arm runs; validated like a sweep file, so that an algorithm that cannot
    search this space fails before Ray starts."""
    space = dict(sweep.space)
    if not space.get("seed", Dimension("constant", (0,))).is_searched:
        space["seed"] = Dimension("constant", (arm.seed,))
    if arm.algorithm == "grid":
        space = as_grid(space, sweep.compare.grid_points)
    scheduler = _scheduler(sweep, arm.scheduler)
    full_trials = budget / (train_examples * scheduler.max_epochs)
    num_samples = _num_samples(sweep, arm, scheduler, budget, train_examples)
    search = sweep.search.model_copy(
        update={
            "algorithm": arm.algorithm,
            "seed": arm.seed,
            "num_samples": num_samples,
            "n_startup_trials": sweep.search.n_startup_trials or max(2, int(full_trials) // 4),
            "time_budget_s": None,
        }
    )
    if isinstance(scheduler, PopulationConfig):  # its population trains side by side
        search = search.model_copy(update={"max_concurrent": num_samples})
    candidate = sweep.model_copy(
        update={
            "name": arm.name,
            "search": search,
            "scheduler": scheduler,
            "space": space,
            "serve": sweep.serve.model_copy(update={"enabled": False}),
            "storage": storage.location,
        }
    )
    try:
        return parse_sweep(yaml.safe_load(sweep_to_yaml(candidate)), source=f"arm {arm.name}")
    except UserError as err:
        details = str(err).split("\n", 1)[-1]  # without the "arm ... is invalid:" line
        raise UserError(
            f"compare.algorithms: {arm.algorithm} cannot run this sweep:\n{details}"
        ) from None


def _layout(compare_dir: StorageDir, arm: Arm, sweep: Sweep, budget: int) -> TensorBoardLayout:
    return TensorBoardLayout(
        home=compare_dir,
        curve_run=arm.algorithm,
        section=arm.section,
        trial_path=f"{arm.algorithm}/{arm.scheduler}/seed_{arm.seed}",
        labels=asdict(arm),
        plot_until=budget,
        tracked=tracked_hyperparameters(sweep),
    )


def _write_plan(
    compare_dir: StorageDir, sweep: Sweep, prepared: Prepared, budget: int, arms: list[Arm]
) -> None:
    plan = {
        "name": sweep.name,
        "model": sweep.model,
        "metric": sweep.metric,
        "mode": sweep.mode,
        "budget_samples": budget,
        "target": sweep.compare.target,
        "train_examples": len(prepared.data.train),
        "max_epochs": sweep.scheduler.max_epochs,
        "arms": [
            {**asdict(arm), "name": arm.name, "run_dir": f"{ARMS}/{arm.name}"} for arm in arms
        ],
    }
    compare_dir.start_fresh()
    compare_dir.write_text(PLAN, json.dumps(plan, indent=2) + "\n")
    compare_dir.write_text(SWEEP_COPY, sweep_to_yaml(sweep))
    compare_dir.push(PLAN, SWEEP_COPY)


def _arm_sweeps(
    compare_dir: StorageDir, sweep: Sweep, prepared: Prepared, budget: int, arms: list[Arm]
) -> dict[Arm, Sweep]:
    """Every arm's sweep, each checked before Ray starts and the first arm runs."""
    train_examples = len(prepared.data.train)
    return {
        arm: arm_sweep(sweep, arm, budget, train_examples, compare_dir.child(ARMS)) for arm in arms
    }


def _run_arms(
    compare_dir: StorageDir,
    sweeps: dict[Arm, Sweep],
    prepared: Prepared,
    budget: int,
    *,
    embedded: bool,
    console: Console,
) -> None:
    """Runs the arms one after the other: an arm with a summary is done and kept, an
    interrupted one resumes, the others start."""
    arms = list(sweeps)
    for number, arm in enumerate(arms, 1):
        run = compare_dir.child(ARMS, arm.name)
        console.rule(f"arm {number}/{len(arms)}: {arm.name}")
        try:
            if read_summary(run) is not None:
                console.print("finished before: kept")
                continue
            if tune.Tuner.can_restore(run.location):
                resume_prepared(
                    sweeps[arm],
                    prepared,
                    run,
                    embedded=embedded,
                    console=console,
                    budget_samples=budget,
                )
            else:
                run.remove()  # what an arm left before Tune saved any state
                run_prepared(
                    sweeps[arm],
                    prepared,
                    run,
                    embedded=embedded,
                    console=console,
                    layout=_layout(compare_dir, arm, sweeps[arm], budget),
                    budget_samples=budget,
                )
        except SweepInterrupted:
            raise SweepInterrupted(
                f"the comparison stopped in arm {arm.name}; continue it with "
                f"`hpo resume {compare_dir}`"
            ) from None
        # An ended arm is never resumed: its checkpoints keep the model and tokenizer but not
        # the optimizer state, two thirds of their size (180 of 270 MB for MiniLM).
        run.remove_files(TRAINING_STATE)


def run_comparison(
    sweep: Sweep, *, target: RayTarget | None = None, console: Console | None = None
) -> StorageDir:
    """Runs every arm, then writes the report; returns the comparison dir."""
    console = console or Console()
    prepared = prepare(sweep)
    train_examples = len(prepared.data.train)
    budget = sweep.compare.budget_samples(
        train_examples, sweep.num_trials() * sweep.scheduler.max_epochs
    )
    arms = plan_arms(sweep)
    compare_dir = new_run_dir(sweep, f"{sweep.name}-compare")
    sweeps = _arm_sweeps(compare_dir, sweep, prepared, budget, arms)
    embedded = connect_ray(
        target or RayTarget(), num_cpus=cpus_needed(sweep), offline=prepared.offline
    )
    _write_plan(compare_dir, sweep, prepared, budget, arms)
    console.print(
        f"[bold]compare {sweep.name}[/]: {len(arms)} arms ({', '.join(sweep.compare.algorithms)}"
        f" x {', '.join(sorted({a.scheduler for a in arms}))} x {sweep.compare.seeds} seeds), "
        f"{budget:,} training samples each ({budget / train_examples:.1f} epochs)\n"
        f"comparison dir: {compare_dir}"
    )
    _run_arms(compare_dir, sweeps, prepared, budget, embedded=embedded, console=console)
    write_comparison_report(compare_dir)
    return compare_dir


def resume_comparison(
    compare_dir: StorageDir, *, target: RayTarget | None = None, console: Console | None = None
) -> StorageDir:
    """Continues an interrupted comparison: finished arms are kept, the interrupted one resumes
    under the same budget, the others run; then the report."""
    console = console or Console()
    compare_dir.pull(PLAN, SWEEP_COPY)
    plan = read_plan(compare_dir)
    sweep = load_sweep(compare_dir.local / SWEEP_COPY)
    prepared = prepare(sweep)
    if len(prepared.data.train) != plan["train_examples"]:
        raise UserError(
            f"{compare_dir}: the training data changed ({len(prepared.data.train)} examples, "
            f"the comparison began with {plan['train_examples']}); start a new comparison"
        )
    arms = [Arm(a["algorithm"], a["scheduler"], a["seed"]) for a in plan["arms"]]
    sweeps = _arm_sweeps(compare_dir, sweep, prepared, plan["budget_samples"], arms)
    embedded = connect_ray(
        target or RayTarget(), num_cpus=cpus_needed(sweep), offline=prepared.offline
    )
    console.print(f"resuming [bold]compare {sweep.name}[/] in {compare_dir}")
    _run_arms(
        compare_dir, sweeps, prepared, plan["budget_samples"], embedded=embedded, console=console
    )
    write_comparison_report(compare_dir)
    return compare_dir
