"""The name of every file and folder hpo writes, in one place: a run dir (`<storage>/<name>`),
a comparison dir (`<storage>/<name>-compare`), the storage root, and a checkpoint.

Tune's own files (its experiment state, one folder per trial with its checkpoints) sit beside
these in a run dir; hpo reads them only through `hpo.search.ray_compat` and Ray's public API.
"""

# --- a run dir -------------------------------------------------------------------------------
SWEEP_COPY = "sweep.yaml"
"""The resolved sweep file the run started with: what resume, status, serve and report read."""
SUMMARY = "summary.json"
"""The best trial and the run's totals; written last, so its presence says the run is over."""
TRIALS = "trials.csv"
"""A row per trial: state, hyperparameters, epochs, best metric and epoch, checkpoint, node."""
TRIALS_JSON = "trials.json"
"""The same trials with every field, for reports and importance analysis."""
CURVE = "curve.csv"
"""Best-so-far points, one per evaluation, in the order the driver saw them."""
TENSORBOARD = "tensorboard"
"""The TensorBoard log dir (of a run, or shared by the arms of a comparison)."""
RUN_REPORT = "report"
"""The folder where `hpo report RUN_DIR` writes report.md and its plots."""
TRAIN_RUNS = "train_runs"
"""Where the ray_train launcher keeps one Ray Train run per trial."""
BEFORE_EXTEND = "before_extend.json"
"""Left by `hpo extend`: the trials and totals of the sweep before it, which the extended
run's results include."""
DISK_STOP = ".disk_stop"
"""Left by a sweep stopped because its disk filled up: free and needed bytes."""

# --- a checkpoint (a `save_pretrained` folder) -----------------------------------------------
TRAINING_STATE = "training_state.pt"
"""Optimizer, LR schedule, step and RNG: what resuming a trial needs and serving never reads."""

# --- a comparison dir ------------------------------------------------------------------------
PLAN = "compare.json"
"""The plan: budget, metric, and every arm with its run dir."""
ARMS = "arms"
"""The folder of the arms' run dirs."""
COMPARISON = "comparison.json"
"""The comparison's table, verdicts and importance, as data."""

# --- reports (a comparison dir, or a run dir's report/) --------------------------------------
REPORT = "report.md"
IMPORTANCE_PLOT = "importance.png"
PARALLEL_PLOT = "parallel_coordinates.png"
RUN_CURVE_PLOT = "curve.png"


def curves_plot(scheduler: str) -> str:
    """A comparison's best-so-far plot for one scheduler."""
    return f"curves_{scheduler}.png"


# --- the storage root ------------------------------------------------------------------------
LEDGER = "promotions.jsonl"
"""The promotion gate's decisions for every sweep name of the storage."""
KEY_FILE = "api_key"
"""The served models' API key (mode 600; kept in the local mirror of a bucket, never uploaded)."""
