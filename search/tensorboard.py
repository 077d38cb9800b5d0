"""TensorBoard logs of a sweep, written in the driver from the trials' reports (Ray's own
TensorBoard logger writes one run per trial and no HParams data that the dashboard can rely on).
No Ray here: the Tune callback that feeds `TensorBoardWriter` is in `hpo.search.callbacks`.

Layout of a log dir:

    <curve_run>/                     best so far against compute, tags
                                     `<section>/best_<metric>_vs_samples` (step: training samples
                                     of all trials) and `<section>/best_<metric>_vs_seconds`
    trials/<trial_path>/<trial_id>/  one run per trial: `train/loss`, `train/learning_rate`,
                                     `train/samples_per_s`, `validation/<metric>` for every metric
                                     (step: the trial's own training samples); at its end
                                     `final/<metric>` (its best evaluation); with serving costs
                                     (`metric: [accuracy, latency_ms]`) `serving/<cost>` and
                                     `final/<cost>`, which HParams' scatter plots set against
                                     `final/accuracy`; and HParams data: the
                                     config plus labels such as the algorithm. Under PBT also
                                     `pbt/<hyperparameter>` (its value at each report) and the
                                     text `pbt/lineage` (each checkpoint it took over)

A single sweep uses the curve run `search` and the section `search`. `hpo compare` gives each
algorithm its own curve run and uses the section `<scheduler>/seed_<k>`, so that every chart
overlays the algorithms for one scheduler and seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpo.core.errors import UserError
from hpo.core.rundir import CURVE, TENSORBOARD
from hpo.core.storage import StorageDir
from hpo.search.compute import CurvePoint, CurveTracker, append_point, keep_points
from hpo.search.results import better
from hpo.trainables.metrics import COSTS, METRICS

TRIALS_RUN = "trials"
"""The TensorBoard run (folder of the log dir) that holds one run per trial."""
TRIAL_SCALARS = {  # report key -> tag
    "train_loss": "train/loss",
    "learning_rate": "train/learning_rate",
    "train_samples_per_s": "train/samples_per_s",
    "epoch": "train/epoch",
    **{metric: f"validation/{metric}" for metric in METRICS},
    **{cost: f"serving/{cost}" for cost in (*COSTS, "latency_batch_ms")},
}


@dataclass(frozen=True)
class TensorBoardLayout:
    """Where a run writes in a log dir, `<home>/tensorboard`: a sweep has its own log dir; the
    arms of a comparison share one, each with its curve run, section, trial path and HParams
    labels."""

    home: StorageDir
    curve_run: str = "search"
    section: str = "search"
    trial_path: str = ""
    labels: dict[str, Any] = field(default_factory=dict)
    plot_until: int | None = None
    """A comparison's sample budget: best-so-far points past it (the overshoot) are not
    plotted, as they count for nothing."""
    tracked: tuple[str, ...] = ()
    """Hyperparameters that change during a trial (PBT's perturbed ones), plotted per report."""

    @property
    def logdir(self) -> Path:
        return self.home.local / TENSORBOARD


def curve_tags(section: str, metric: str) -> tuple[str, str]:
    """The two best-so-far tags of a section: against samples, and against seconds."""
    return f"{section}/best_{metric}_vs_samples", f"{section}/best_{metric}_vs_seconds"


def _writer(logdir: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(logdir), flush_secs=10)


def hparams_value(value: Any) -> float | str | bool:
    """TensorBoard's HParams take numbers, strings and booleans."""
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _session_start(hparams: dict[str, Any], trial_id: str):
    from tensorboard.plugins.hparams import summary_v2

    values = {name: hparams_value(value) for name, value in hparams.items()}
    return summary_v2.hparams_pb(values, trial_id=trial_id, start_time_secs=time.time())


def _session_end(failed: bool):
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    status = api_pb2.STATUS_FAILURE if failed else api_pb2.STATUS_SUCCESS
    content = plugin_data_pb2.HParamsPluginData(
        version=metadata.PLUGIN_DATA_VERSION,
        session_end_info=plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time()),
    )
    return Summary(
        value=[
            Summary.Value(
                tag=metadata.SESSION_END_INFO_TAG,
                metadata=metadata.create_summary_metadata(content),
            )
        ]
    )


class TensorBoardWriter:
    """Writes the TensorBoard runs above and the run's `curve.csv` (the same best-so-far
    points) from the stream of trial reports.

    Tune pickles its callbacks with the experiment, and this writer with them, so file writers
    are opened where they are used and left out of the pickle; `get_state` carries the curve
    across `hpo resume`.
    """

    def __init__(
        self, layout: TensorBoardLayout, *, run: StorageDir, metric: str, mode: str
    ) -> None:
        self.layout, self.run = layout, run
        self.metric, self.mode = metric, mode
        self.tracker = CurveTracker(metric, mode)
        self.trial_best: dict[str, dict[str, float]] = {}
        self._writers: dict[str, Any] = {}  # per trial id, open until the trial ends
        self._curve_writer: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_writers": {}, "_curve_writer": None}

    @property
    def trial_dir(self) -> Path:
        """Found anew on every use: a run in a bucket resumed on another machine has its local
        mirror elsewhere."""
        return self.layout.logdir / TRIALS_RUN / self.layout.trial_path

    def start(self) -> None:
        self.tracker.start()

    def trial_result(self, trial_id: str, config: dict[str, Any], result: dict[str, Any]) -> None:
        """One report: the trial's scalars, and a best-so-far point when it has the metric."""
        writer = self._writers.get(trial_id)
        if writer is None:  # a trial's run begins with its first result
            writer = self._writers[trial_id] = _writer(self.trial_dir / trial_id)
            writer.file_writer.add_summary(
                _session_start({**config, **self.layout.labels}, trial_id)
            )
        step = int(result.get("samples", 0))
        for key, tag in TRIAL_SCALARS.items():
            if isinstance(result.get(key), int | float):
                writer.add_scalar(tag, float(result[key]), step)
        for key in self.layout.tracked:
            if isinstance(config.get(key), int | float):
                writer.add_scalar(f"pbt/{key}", float(config[key]), step)
        if isinstance(result.get("parent"), str):
            changed = ", ".join(f"{key} = {config.get(key)}" for key in self.layout.tracked)
            writer.add_text(
                "pbt/lineage",
                f"at epoch {result['parent_epoch']:.3g} took over trial {result['parent']}'s "
                f"checkpoint and went on with {changed}",
                step,
            )
        point = self.tracker.add(trial_id, result)
        if point is None:
            return
        self._remember_best(trial_id, result)
        self._plot(point)
        append_point(self.run.local / CURVE, point)

    def _remember_best(self, trial_id: str, result: dict[str, Any]) -> None:
        value, best = result[self.metric], self.trial_best.get(trial_id)
        if best is None or better(value, best[self.metric], self.mode):
            kept = (*METRICS, *COSTS)  # a multi-objective sweep's every objective
            self.trial_best[trial_id] = {m: float(result[m]) for m in kept if m in result}

    def _plot(self, point: CurvePoint) -> None:
        if self.layout.plot_until is not None and point.samples > self.layout.plot_until:
            return
        by_samples, by_seconds = curve_tags(self.layout.section, self.metric)
        if self._curve_writer is None:
            self._curve_writer = _writer(self.layout.logdir / self.layout.curve_run)
        self._curve_writer.add_scalar(by_samples, point.best, point.samples)
        self._curve_writer.add_scalar(by_seconds, point.best, round(point.seconds))

    def end_trial(self, trial_id: str, *, failed: bool = False) -> None:
        """Final metrics and the HParams session end, for a trial that reported anything."""
        writer = self._writers.pop(trial_id, None)
        if writer is None:
            return
        for metric, value in self.trial_best.get(trial_id, {}).items():
            writer.add_scalar(f"final/{metric}", value, 0)
        writer.file_writer.add_summary(_session_end(failed))
        writer.close()

    def flush(self) -> None:
        for writer in [*self._writers.values(), self._curve_writer]:
            if writer is not None:
                writer.flush()

    def close(self) -> None:
        """Ends the trials still open (stopped by a sample budget, or paused at a Hyperband
        rung that never resumed) and the curve."""
        for trial_id in list(self._writers):
            self.end_trial(trial_id)
        if self._curve_writer is not None:
            self._curve_writer.close()
            self._curve_writer = None

    def get_state(self) -> dict[str, Any]:
        return {"tracker": self.tracker.get_state(), "trial_best": self.trial_best}

    def set_state(self, state: dict[str, Any]) -> None:
        """Resumes from Tune's last snapshot; curve.csv drops the points made after it, which
        the resumed trials report again."""
        self.tracker.set_state(state["tracker"])
        self.trial_best = state["trial_best"]
        if "points" in state["tracker"]:
            keep_points(self.run.local / CURVE, state["tracker"]["points"])


def find_logdir(directory: StorageDir) -> Path:
    """The log dir of a run or comparison dir (from a bucket: its `tensorboard/` downloaded),
    or a local folder that itself holds event files."""
    directory.pull(TENSORBOARD)
    path = directory.local
    if (path / TENSORBOARD).is_dir():
        return path / TENSORBOARD
    if path.is_dir() and next(path.rglob("events.out.tfevents.*"), None) is not None:
        return path
    raise UserError(f"{directory}: no TensorBoard logs here; give a run dir or a comparison dir")


def launch_tensorboard(logdir: Path, host: str, port: int) -> str:
    """Starts TensorBoard in this process (in the background); returns its URL."""
    from tensorboard import program

    board = program.TensorBoard()
    board.configure(argv=[None, "--logdir", str(logdir), "--host", host, "--port", str(port)])
    try:
        return board.launch()
    except program.TensorBoardServerException as err:
        raise UserError(f"TensorBoard cannot start on {host}:{port}: {err}") from None
