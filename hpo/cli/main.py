"""The `hpo` entry point: every command, and what turns user errors into a message and an exit
code instead of a traceback."""

from __future__ import annotations

import os
import signal
import sys
import warnings
from typing import Any

import typer
from rich.markup import escape

from hpo.cli import clusters, serving, sweeps
from hpo.cli.options import errors
from hpo.core.config import SweepFileWarning
from hpo.core.errors import SweepInterrupted, UserError
from hpo.core.signals import stop_as_on_ctrl_c

app = typer.Typer(
    help="Hyperparameter search for Hugging Face text classifiers on Ray.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for command in (
    sweeps.validate,
    sweeps.schema,
    sweeps.run,
    sweeps.resume,
    sweeps.extend,
    sweeps.status,
    sweeps.best,
    sweeps.compare,
    sweeps.report,
    sweeps.tensorboard,
):
    app.command()(command)
app.command("serve")(serving.serve)
app.command()(serving.rollback)
app.command()(serving.query)
app.command()(clusters.submit)

cluster_app = typer.Typer(
    help="A local multi-node Ray cluster, and configs for real clusters.", no_args_is_help=True
)
cluster_app.command("up")(clusters.cluster_up)
cluster_app.command("down")(clusters.cluster_down)
cluster_app.command("render")(clusters.cluster_render)
app.add_typer(cluster_app, name="cluster")

jobs_app = typer.Typer(help="Sweeps submitted as Ray Jobs.", no_args_is_help=True)
jobs_app.command("list")(clusters.jobs_list)
jobs_app.command("status")(clusters.jobs_status)
jobs_app.command("logs")(clusters.jobs_logs)
jobs_app.command("stop")(clusters.jobs_stop)
app.add_typer(jobs_app, name="jobs")


def _show_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    """Sweep-file warnings as one plain line; other warnings as Python prints them."""
    if issubclass(category, SweepFileWarning):
        errors.print(f"[yellow]warning:[/] {escape(str(message))}")
    else:
        _python_show_warning(message, category, *args, **kwargs)


_python_show_warning = warnings.showwarning


def _stop_as_on_ctrl_c(signum: int, frame: Any) -> None:
    """SIGTERM (Kubernetes, systemd, `kill`) stops hpo as Ctrl-C does: a sweep is stopped to be
    resumed, a service drained, a starting cluster cleaned up."""
    stop_as_on_ctrl_c()


def main() -> None:
    """Entry point of the `hpo` script: user errors become a message and exit code 2."""
    # This process's own settings, made here at its edge rather than by the library: quiet
    # transformers, Tune's older console output (ConsoleProgress prints instead of its tables).
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    warnings.showwarning = _show_warning
    signal.signal(signal.SIGTERM, _stop_as_on_ctrl_c)
    try:
        app()
    except SweepInterrupted as err:
        errors.print(f"[yellow]interrupted:[/] {escape(str(err))}")
        sys.exit(130)
    except UserError as err:
        errors.print(f"[red]error:[/] {escape(str(err))}")
        sys.exit(2)
    except KeyboardInterrupt:  # a sweep stopped by Tune says how to resume (SweepInterrupted)
        errors.print("interrupted")
        sys.exit(130)
