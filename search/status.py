"""`hpo status`: a table of a sweep's trials, refreshed live while the sweep runs (from Tune's
experiment snapshot), or once from trials.json when it has ended."""

from __future__ import annotations

import time

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from hpo.core.rundir import SUMMARY
from hpo.core.storage import StorageDir
from hpo.search.results import (
    Objective,
    TrialRecord,
    best_trial,
    make_record,
    read_before_extend,
    read_trials,
)
from hpo.search.sweep import Sweep
from hpo.search.sweepfile import load_run_sweep
from hpo.search.tune_results import snapshots_on_disk

_STATE_STYLE = {
    "completed": "green",
    "running": "cyan",
    "stopped_early": "yellow",
    "paused": "magenta",
    "error": "red",
}


def _format(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def status_table(
    sweep: Sweep, records: list[TrialRecord], sweep_over: bool, earlier: int = 0
) -> RenderableType:
    """The trials as a table under a headline; `earlier`: trials from before `hpo extend`."""
    hyperparameters = sorted({key for record in records for key in record.config})
    table = Table(title=None, show_lines=False)
    for column in ("trial", "state", "epoch", f"best {sweep.metric}", "at epoch"):
        table.add_column(column, justify="left" if column in ("trial", "state") else "right")
    for name in hyperparameters:
        table.add_column(name, justify="right")
    best = best_trial(records, sweep.mode) or None
    for record in records:
        style = "bold" if best is not None and record.trial_id == best.trial_id else ""
        table.add_row(
            record.trial_id,
            Text(record.state, style=_STATE_STYLE.get(record.state, "")),
            f"{record.epochs:.2f}",
            _format(record.best_metric),
            _format(record.best_epoch),
            *(_format(record.config.get(name)) for name in hyperparameters),
            style=style,
        )
    states = [r.state for r in records]
    counts = ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states)))
    expected = earlier + sweep.num_trials()
    headline = f"[bold]{sweep.name}[/]: {len(records)}/{expected} trials ({counts})"
    if best is not None:
        headline += f"; best {sweep.metric} {best.best_metric:.4f} by {best.trial_id}"
    headline += "; finished" if sweep_over else ""
    return Group(Text.from_markup(headline), table)


def _over(run: StorageDir) -> bool:
    run.pull(SUMMARY)
    return (run.local / SUMMARY).is_file()


def _snapshot(run: StorageDir, sweep: Sweep) -> RenderableType:
    earlier = len(read_before_extend(run).records)
    if _over(run):
        records = [TrialRecord(**t) for t in read_trials(run)]
        return status_table(sweep, records, sweep_over=True, earlier=earlier)
    objective = Objective(sweep.metric, sweep.mode, sweep.scheduler.max_epochs)
    try:
        on_disk = snapshots_on_disk(run)
    except ValueError:  # Tune has not written its first experiment snapshot yet
        return Text(f"{sweep.name}: waiting for the first trial to start...")
    before = read_before_extend(run).records  # an extension shows the trials it goes on from
    records = before + [make_record(s, objective, sweep_over=False) for s in on_disk]
    return status_table(sweep, records, sweep_over=False, earlier=earlier)


def show_status(run: StorageDir, *, console: Console, watch: bool, interval: float) -> None:
    """Prints the table once, or keeps it live until summary.json appears (or Ctrl-C)."""
    sweep = load_run_sweep(run)
    if not watch or _over(run):
        console.print(_snapshot(run, sweep))
        return
    with Live(_snapshot(run, sweep), console=console, auto_refresh=False) as live:
        while not _over(run):
            time.sleep(interval)
            live.update(_snapshot(run, sweep), refresh=True)
