"""The `hpo` command line: thin typer commands that call one function each. User errors are
caught here, at the edge, and printed as one short message with exit code 2."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from trainables.errors import SweepInterrupted, UserError

app = typer.Typer(
    help="Hyperparameter search for Hugging Face text classifiers on Ray.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)

SweepArg = Annotated[Path, typer.Argument(help="The sweep file (YAML).")]
RunDirArg = Annotated[Path, typer.Argument(help="A run dir: <storage>/<name>.")]
SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a key: --set search.num_samples=2 (repeatable)."),
]
AddressOption = Annotated[
    Optional[str],
    typer.Option(help="Ray cluster to join (default: RAY_ADDRESS, else an embedded Ray)."),
]
NoServeOption = Annotated[
    bool, typer.Option("--no-serve", help="Do not deploy the best model when the sweep ends.")
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show Ray's own logs.")]


@app.command()
def validate(sweep: SweepArg, set_: SetOption = None) -> None:
    """Check a sweep file and print what it would run."""
    from search.sweep import load_sweep

    loaded = load_sweep(sweep, set_ or [])
    console.print(
        f"[green]ok[/] {sweep}: {loaded.num_trials()} trials of {loaded.model}, "
        f"{loaded.search.algorithm} search, {loaded.scheduler.name} scheduler, "
        f"metric {loaded.metric} ({loaded.mode})"
    )


@app.command()
def schema() -> None:
    """Print the JSON Schema of sweep files (for editor completion)."""
    from search.sweep import Sweep

    console.print_json(json.dumps(Sweep.model_json_schema()))


@app.command()
def run(
    sweep: SweepArg,
    set_: SetOption = None,
    address: AddressOption = None,
    no_serve: NoServeOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Run a sweep; the best checkpoint ends up in <storage>/<name>/summary.json."""
    from search.runner import run_sweep
    from search.sweep import load_sweep

    summary = run_sweep(load_sweep(sweep, set_ or []), address=address, console=console,
                        verbose=verbose)
    _print_best(summary)


@app.command()
def resume(
    run_dir: RunDirArg,
    address: AddressOption = None,
    no_serve: NoServeOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Continue an interrupted sweep from its run dir."""
    from search.runner import resume_sweep

    _print_best(resume_sweep(run_dir, address=address, console=console, verbose=verbose))


@app.command()
def best(run_dir: RunDirArg, json_: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print the best trial of a finished sweep."""
    from search.results import read_summary

    summary = read_summary(run_dir)
    if summary is None:
        raise UserError(f"{run_dir}: no summary.json yet; is the sweep still running?")
    if json_:
        console.print_json(json.dumps(summary["best"]))
    else:
        _print_best(summary)


@app.command()
def status(
    run_dir: RunDirArg,
    watch: Annotated[bool, typer.Option(help="Refresh until the sweep ends.")] = True,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
) -> None:
    """Show the trials of a sweep: state, epoch, metric, best so far (live while it runs)."""
    from search.status import show_status

    show_status(run_dir, console=console, watch=watch, interval=interval)


def _print_best(summary: dict) -> None:
    best_trial = summary.get("best")
    if best_trial is None:
        console.print("[red]no trial produced a checkpoint[/]")
        return
    console.print(
        f"\n[bold]best {summary['metric']}: {best_trial['metric']:.4f}[/] "
        f"(trial {best_trial['trial_id']}, epoch {best_trial['epoch']}) after "
        f"{summary['num_trials']} trials in {summary['wall_s']:.0f} s\n"
        f"config: {json.dumps(best_trial['config'])}\n"
        f"checkpoint: {best_trial['checkpoint']}"
    )


def main() -> None:
    """Entry point of the `hpo` script: user errors become a message and exit code 2."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        app()
    except SweepInterrupted as err:
        errors.print(f"[yellow]interrupted:[/] {escape(str(err))}")
        sys.exit(130)
    except UserError as err:
        errors.print(f"[red]error:[/] {escape(str(err))}")
        sys.exit(2)
    except KeyboardInterrupt:
        errors.print("interrupted; continue with `hpo resume RUN_DIR`")
        sys.exit(130)


if __name__ == "__main__":
    main()
