"""A Tune callback that prints one readable line per trial event, instead of Tune's tables."""

from __future__ import annotations

from typing import Any

from ray.tune import Callback
from rich.console import Console


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _short(config: dict[str, Any]) -> str:
    def fmt(value: Any) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    return " ".join(f"{key}={fmt(value)}" for key, value in sorted(config.items()))


class ConsoleProgress(Callback):
    """Prints trial starts, every evaluation with the best so far, stops and errors.

    Tune pickles its callbacks with the experiment (for `hpo resume`), so the console is made
    where it prints, not stored.
    """

    def __init__(self, *, metric: str, mode: str, max_epochs: float) -> None:
        self._metric = metric
        self._mode = mode
        self._max_epochs = max_epochs
        self._best: tuple[float, str] | None = None
        self._last_epoch: dict[str, float] = {}

    def on_trial_start(self, iteration: int, trials: list, trial, **info: Any) -> None:
        _console().print(f"[bold]{trial.trial_id}[/] started  {_short(trial.config)}")

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        value = result.get(self._metric)
        if value is None:
            return
        better = self._best is None or (
            value > self._best[0] if self._mode == "max" else value < self._best[0]
        )
        if better:
            self._best = (value, trial.trial_id)
        epoch = float(result.get("epoch", 0.0))
        self._last_epoch[trial.trial_id] = epoch
        best_value, best_id = self._best
        _console().print(
            f"{trial.trial_id} epoch {epoch:.2f}  {self._metric} {value:.4f}  "
            f"train_loss {result.get('train_loss', float('nan')):.4f}  "
            f"{result.get('train_samples_per_s', 0):.0f} samples/s  "
            f"[dim](best {best_value:.4f} by {best_id})[/]"
        )

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        epoch = self._last_epoch.get(trial.trial_id, 0.0)
        if epoch >= self._max_epochs - 1e-6:
            _console().print(f"{trial.trial_id} [green]completed[/] {epoch:.2f} epochs")
        else:
            _console().print(
                f"{trial.trial_id} [yellow]stopped early[/] by the scheduler at epoch {epoch:.2f}"
            )

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        _console().print(f"{trial.trial_id} [red]failed[/]; see {trial.path}/error.txt")
