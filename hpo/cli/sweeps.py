"""The commands about sweeps: validate, schema, run, resume, extend, status, best, compare,
report and tensorboard."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hpo.cli.options import (
    AddressOption,
    DetachOption,
    KeepServingOption,
    NoServeOption,
    RunDirArg,
    SetOption,
    SweepArg,
    VerboseOption,
    console,
    ray_target,
)
from hpo.cli.serving import serve_after_sweep
from hpo.core.errors import UserError
from hpo.core.rundir import COMPARISON, PLAN, REPORT, SWEEP_COPY
from hpo.core.storage import StorageDir
from hpo.search.algorithms import ALGORITHMS
from hpo.search.report import write_comparison_report, write_run_report
from hpo.search.results import read_summary
from hpo.search.schedulers import SCHEDULERS
from hpo.search.status import show_status
from hpo.search.sweep import Sweep
from hpo.search.sweepfile import load_sweep
from hpo.search.tensorboard import find_logdir, launch_tensorboard


def validate(sweep: SweepArg, set_: SetOption = None) -> None:
    """Check a sweep file and print what it would run."""
    loaded = load_sweep(sweep, set_ or [])
    objectives = ", ".join(f"{name} ({mode})" for name, mode in loaded.objectives)
    console.print(
        f"[green]ok[/] {sweep}: {loaded.num_trials()} trials of {loaded.model}, "
        f"{loaded.search.algorithm} search, {loaded.scheduler_summary}, "
        f"metric{'s' * bool(loaded.costs)} {objectives}"
    )


def schema() -> None:
    """Print the JSON Schema of sweep files (for editor completion)."""
    console.print_json(json.dumps(Sweep.model_json_schema()))


def _print_front(summary: dict[str, Any]) -> None:
    """A multi-objective sweep's Pareto front, the selected point marked."""
    names = [objective["metric"] for objective in summary["objectives"]]
    selection = summary["selection"]
    table = Table(
        title=f"Pareto front of {', '.join(names)}: {len(summary['pareto_front'])} of "
        f"{summary['num_trials']} trials",
        caption=f"selected ({selection['rule']}): {selection['reason']}",
    )
    for column in ("trial", *names, "config"):
        table.add_column(column)
    for point in summary["pareto_front"]:
        chosen = point["trial_id"] == selection["trial_id"]
        table.add_row(
            f"{'* ' if chosen else ''}{point['trial_id']}",
            *(f"{point[name]:.4g}" for name in names),
            json.dumps(point["config"]),
            style="bold" if chosen else None,
        )
    console.print(table)


def print_best(summary: dict[str, Any]) -> None:
    if "pareto_front" in summary:
        _print_front(summary)
    best = summary.get("best")
    if best is None:
        why = summary.get("selection", {}).get("reason", "no trial produced a checkpoint")
        console.print(f"[red]nothing to deploy: {why}[/]")
        return
    costs = "".join(
        f", {o['metric']} {best['metrics'][o['metric']]:.4g}"
        for o in summary.get("objectives", [])[1:]
    )
    console.print(
        f"\n[bold]best {summary['metric']}: {best['metric']:.4f}{costs}[/] "
        f"(trial {best['trial_id']}, epoch {best['epoch']}) after "
        f"{summary['num_trials']} trials in {summary['wall_s']:.0f} s\n"
        f"config: {json.dumps(best['config'])}\n"
        f"checkpoint: {best['checkpoint']}"
    )


def run(
    sweep: SweepArg,
    set_: SetOption = None,
    address: AddressOption = None,
    no_serve: NoServeOption = False,
    keep_serving: KeepServingOption = True,
    detach: DetachOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Run a sweep, then deploy its best model behind the promotion gate (unless --no-serve)."""
    from hpo.search.runner import run_sweep  # imports Ray and torch

    loaded = load_sweep(sweep, set_ or [])
    summary = run_sweep(loaded, target=ray_target(address, verbose), console=console)
    print_best(summary)
    serve_after_sweep(summary, no_serve=no_serve, keep_serving=keep_serving, detach=detach)


def resume(
    run_dir: Annotated[str, typer.Argument(help="A run dir or a comparison dir (folder or URI).")],
    address: AddressOption = None,
    no_serve: NoServeOption = False,
    keep_serving: KeepServingOption = True,
    detach: DetachOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Continue an interrupted sweep (then deploy, as `hpo run`) or comparison."""
    from hpo.search.compare import resume_comparison  # imports Ray and torch
    from hpo.search.runner import resume_sweep

    folder = StorageDir.at(run_dir)
    folder.pull(PLAN)
    if (folder.local / PLAN).is_file():
        resume_comparison(folder, target=ray_target(address, verbose), console=console)
        _print_comparison(folder)
        return
    summary = resume_sweep(folder, target=ray_target(address, verbose), console=console)
    print_best(summary)
    serve_after_sweep(summary, no_serve=no_serve, keep_serving=keep_serving, detach=detach)


def _added_trials(value: str) -> int:
    """`--num-samples +8` (or 8): how many trials to add."""
    try:
        added = int(value.removeprefix("+"))
    except ValueError:
        added = 0
    if added < 1:
        raise typer.BadParameter(f"write the number of trials to add, such as +8, not {value!r}")
    return added


def extend(
    run_dir: RunDirArg,
    num_samples: Annotated[
        str, typer.Option(help="Trials to add, such as +8.", callback=_added_trials)
    ] = "+4",
    max_epochs: Annotated[
        float | None, typer.Option(help="Epochs the added trials train (default: as before).")
    ] = None,
    set_: SetOption = None,
    address: AddressOption = None,
    no_serve: NoServeOption = False,
    keep_serving: KeepServingOption = True,
    detach: DetachOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Add trials to a finished sweep, its searcher starting from every past trial; then deploy
    through the promotion gate, as `hpo run`."""
    from hpo.search.runner import extend_sweep  # imports Ray and torch

    summary = extend_sweep(
        StorageDir.at(run_dir),
        add_trials=int(num_samples),
        max_epochs=max_epochs,
        overrides=set_ or [],
        target=ray_target(address, verbose),
        console=console,
    )
    print_best(summary)
    serve_after_sweep(summary, no_serve=no_serve, keep_serving=keep_serving, detach=detach)


def best(run_dir: RunDirArg, json_: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print the best trial of a finished sweep."""
    summary = read_summary(StorageDir.at(run_dir))
    if summary is None:
        raise UserError(f"{run_dir}: no summary.json yet; is the sweep still running?")
    if json_:
        console.print_json(json.dumps(summary["best"]))
    else:
        print_best(summary)


def status(
    run_dir: RunDirArg,
    watch: Annotated[bool, typer.Option(help="Refresh until the sweep ends.")] = True,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
) -> None:
    """Show the trials of a sweep: state, epoch, metric, best so far (live while it runs)."""
    show_status(StorageDir.at(run_dir), console=console, watch=watch, interval=interval)


def _overshoot(arms: list[dict]) -> str:
    """What the arms trained past the budget: Tune stops an arm only after a report crosses
    it. Those reports count for nothing above."""
    overshoots = [arm.get("overshoot", 0) for arm in arms]
    return (
        f"trained past the budget, not counted: {min(overshoots):,} to {max(overshoots):,} "
        "samples per arm"
    )


def _print_comparison(compare_dir: StorageDir) -> None:
    comparison = json.loads((compare_dir.local / COMPARISON).read_text())
    metric = comparison["metric"]
    grid = Table(
        title=f"{comparison['name']}: best {metric} within {comparison['budget_samples']:,} "
        f"training samples per arm (target {comparison['target']:.4f})",
        caption=_overshoot(comparison["arms"]),
    )
    columns = (
        "scheduler",
        "algorithm",
        f"best {metric}",
        "± std",
        "seeds",
        "rank",
        "samples to target",
        "trials",
        "wall s",
    )
    for column in columns:
        grid.add_column(column, no_wrap=True)
    for row in comparison["rows"]:
        to_target = (
            "never"
            if row["samples_to_target"] is None
            else f"{row['samples_to_target']:,.0f} ({row['reached']}/{len(row['finals'])})"
        )
        grid.add_row(
            row["scheduler"],
            row["algorithm"],
            f"{row['mean']:.4f}",
            f"{row['std']:.4f}",
            str(len(row["finals"])),
            f"{row['mean_rank']:.2f}",
            to_target,
            f"{row['trials']:.1f}",
            f"{row['wall_s']:.0f}",
        )
    wide = console if console.is_terminal else Console(width=120)  # logs: no squeezed columns
    wide.print(grid)
    for text in comparison["verdicts"].values():
        console.print(text)
    console.print(
        f"report: {compare_dir.local / REPORT}\nTensorBoard: hpo tensorboard {compare_dir}"
    )


def compare(
    sweep: SweepArg,
    algorithms: Annotated[
        str | None,
        typer.Option(
            help=f"Comma-separated, of: {', '.join(ALGORITHMS)} (default: the sweep's "
            "compare.algorithms)."
        ),
    ] = None,
    schedulers: Annotated[
        str | None,
        typer.Option(
            help=f"Comma-separated, of: {', '.join(SCHEDULERS)} (default: the sweep's scheduler)."
        ),
    ] = None,
    seeds: Annotated[int | None, typer.Option(help="Seeds per algorithm and scheduler.")] = None,
    budget: Annotated[
        str | None, typer.Option(help="Training samples per arm (20000) or epochs ('6 epochs').")
    ] = None,
    set_: SetOption = None,
    address: AddressOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Run every algorithm x scheduler x seed under the same budget; report and TensorBoard."""
    from hpo.search.compare import run_comparison  # imports Ray and torch

    options = {"algorithms": algorithms, "schedulers": schedulers, "seeds": seeds, "budget": budget}
    overrides = [*(set_ or [])]
    for key, value in options.items():
        if value is None:
            continue
        if key in ("algorithms", "schedulers"):
            value = "[" + ",".join(part.strip() for part in value.split(",")) + "]"
        overrides.append(f"compare.{key}={value}")
    compare_dir = run_comparison(
        load_sweep(sweep, overrides), target=ray_target(address, verbose), console=console
    )
    _print_comparison(compare_dir)


def report(
    directory: Annotated[str, typer.Argument(help="A run dir, or a comparison dir.")],
) -> None:
    """Write report.md and its plots for a finished sweep (or redo a comparison's)."""
    folder = StorageDir.at(directory)
    folder.pull(PLAN, SWEEP_COPY)
    if (folder.local / PLAN).is_file():
        write_comparison_report(folder)
        _print_comparison(folder)
    else:
        console.print(f"report: {write_run_report(folder)}")


def tensorboard(
    directory: Annotated[str, typer.Argument(help="A run dir or a comparison dir.")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free one).")] = 6006,
) -> None:
    """Start TensorBoard on the logs of a run or comparison and print its URL."""
    logdir = find_logdir(StorageDir.at(directory))
    url = launch_tensorboard(logdir, host, port)
    try:  # a Ctrl-C or SIGTERM right after the announcement is a clean stop too
        console.print(f"TensorBoard on {logdir}: {url}  (Ctrl-C to stop)", markup=False)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopped TensorBoard")
