"""Everything hpo hands to Ray Tune to watch a sweep, in one place: the console progress lines,
the TensorBoard and curve logging (a thin adapter over `TensorBoardWriter`), and the sample
budget that ends a comparison's arm. The bookkeeping they do lives in modules without Ray
(`compute`, `tensorboard`), which reports and analysis read."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback, Stopper
from rich.console import Console

from hpo.core.rundir import CURVE, DISK_STOP, TENSORBOARD
from hpo.core.signals import stop_as_on_ctrl_c
from hpo.core.storage import StorageDir
from hpo.search.compute import ComputeLedger
from hpo.search.results import better
from hpo.search.tensorboard import TensorBoardLayout, TensorBoardWriter
from hpo.search.tune_results import CHECKPOINT_PATH, snapshots_on_disk
from hpo.trainables.metrics import COSTS

UPLOAD_EVERY_S = 60.0
"""How often the logs of a run in a bucket are uploaded while it runs (and once at its end)."""


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _short(config: dict[str, Any]) -> str:
    def fmt(value: Any) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    return " ".join(f"{key}={fmt(value)}" for key, value in sorted(config.items()))


class ConsoleProgress(Callback):
    """Prints trial starts, every evaluation with the best so far, stops and errors, instead of
    Tune's tables.

    Tune pickles its callbacks with the experiment (for `hpo resume`), so the console is made
    where it prints, not stored.
    """

    def __init__(self, *, metric: str, mode: str, max_epochs: float) -> None:
        self._metric = metric
        self._mode = mode
        self._max_epochs = max_epochs
        self._best: tuple[float, str] | None = None
        self._last_epoch: dict[str, float] = {}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        _console().print(f"[bold]{trial.trial_id}[/] started  {_short(trial.config)}")

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        value = result.get(self._metric)
        if value is None:
            return
        if self._best is None or better(value, self._best[0], self._mode):
            self._best = (value, trial.trial_id)
        epoch = float(result.get("epoch", 0.0))
        self._last_epoch[trial.trial_id] = epoch
        best_value, best_id = self._best
        costs = "".join(f"{name} {result[name]:.4g}  " for name in COSTS if name in result)
        _console().print(
            f"{trial.trial_id} epoch {epoch:.2f}  {self._metric} {value:.4f}  {costs}"
            f"train_loss {result.get('train_loss', float('nan')):.4f}  "
            f"{result.get('train_samples_per_s', 0):.0f} samples/s  "
            f"[dim](best {best_value:.4f} by {best_id})[/]"
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        epoch = self._last_epoch.get(trial.trial_id, 0.0)
        if epoch >= self._max_epochs - 1e-6:
            _console().print(f"{trial.trial_id} [green]completed[/] {epoch:.2f} epochs")
        else:
            _console().print(
                f"{trial.trial_id} [yellow]stopped early[/] by the scheduler at epoch {epoch:.2f}"
            )

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        _console().print(f"{trial.trial_id} [red]failed[/]; see {trial.path}/error.txt")


class TensorBoardCallback(Callback):
    """Feeds every report to a `TensorBoardWriter`, and uploads the logs and the curve every
    minute where the run lives in a bucket."""

    def __init__(
        self, layout: TensorBoardLayout, *, run: StorageDir, metric: str, mode: str
    ) -> None:
        self.writer = TensorBoardWriter(layout, run=run, metric=metric, mode=mode)
        self._uploaded_at = 0.0

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_uploaded_at": 0.0}

    def setup(self, **info: Any) -> None:
        self.writer.start()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self.writer.trial_result(trial.trial_id, trial.config, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.writer.end_trial(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.writer.end_trial(trial.trial_id, failed=True)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.time() - self._uploaded_at >= UPLOAD_EVERY_S:
            self._upload()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Tune calls no on_trial_complete for trials that a sample budget stopped, or that a
        Hyperband rung paused for good: the writer ends them here."""
        self.writer.close()
        self._upload()

    def _upload(self) -> None:
        """Pushes the logs written since the last upload (nothing for a local run dir)."""
        run = self.writer.run
        if not run.remote:
            return
        started = time.time()
        self.writer.flush()
        self.writer.layout.home.push(TENSORBOARD, since=self._uploaded_at)
        run.push(CURVE)
        self._uploaded_at = started

    def get_state(self) -> dict[str, Any]:
        return self.writer.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self.writer.set_state(state)


def _folder_bytes(folder: str) -> int:
    root = Path(folder)
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) if root.is_dir() else 0


class DiskGuard(Callback):
    """Stops the sweep, as Ctrl-C would (resumable, every file whole), when the disk of a local
    run dir has less room than the next checkpoints need: twice the largest checkpoint per
    concurrent trial, and at least MIN_FREE_BYTES. Running out mid-write would leave Tune's
    own state torn, and the sweep could not be resumed. The runner reads the marker it leaves
    and says why the sweep stopped."""

    MIN_FREE_BYTES = 20_000_000

    def __init__(self, run: StorageDir, max_concurrent: int) -> None:
        self.run, self.max_concurrent = run, max_concurrent
        self.largest_checkpoint = 0
        self.stopping = False

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "stopping": False}

    def _saw(self, folder: str) -> None:
        if not self.run.remote:
            self.largest_checkpoint = max(self.largest_checkpoint, _folder_bytes(folder))

    def on_checkpoint(
        self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any
    ) -> None:
        self._saw(checkpoint.path)

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        if isinstance(result.get(CHECKPOINT_PATH), str):  # a Ray Train checkpoint
            self._saw(result[CHECKPOINT_PATH])

    def needed_bytes(self) -> int:
        return max(self.MIN_FREE_BYTES, 2 * self.max_concurrent * self.largest_checkpoint)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self.run.remote or self.stopping:
            return
        free = shutil.disk_usage(self.run.local).free
        if free < self.needed_bytes():
            self.stopping = True
            self.run.write_text(DISK_STOP, f"{free} {self.needed_bytes()}\n")
            stop_as_on_ctrl_c()  # Tune's own graceful stop


class SampleBudget(Stopper):
    """Ends the whole experiment once its trials have trained on `samples` examples, so that
    every arm of a comparison gets the same compute whatever its scheduler does with it.

    Tune restores a stopper as it was pickled when the experiment began, so after a resume
    its ledger starts from the trials' results on disk (once per process): trials that ended
    before the interruption still count.
    """

    def __init__(self, samples: int, run_location: str) -> None:
        self.samples = samples
        self.run_location = run_location
        self.ledger = ComputeLedger()
        self._caught_up = False

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_caught_up": False}

    def _catch_up(self) -> None:
        self._caught_up = True
        try:
            trials = snapshots_on_disk(StorageDir(self.run_location))
        except (ValueError, FileNotFoundError):  # no experiment state yet: a new run
            return
        for trial in trials:
            if trial.rows:
                self.ledger.add(trial.trial_id, int(trial.rows[-1].get("samples", 0)))

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if not self._caught_up:
            self._catch_up()
        self.ledger.add(trial_id, int(result.get("samples", 0)))
        return False

    def stop_all(self) -> bool:
        return self.ledger.total >= self.samples
