"""The promotion gate and its ledger, `<storage>/promotions.jsonl`. In a bucket, an append
downloads the ledger, adds a line and uploads it whole: two deployments of one storage at the
same moment may lose a line, so deploy from one place at a time.

Each line is one decision about a sweep name: a candidate `promoted` or `rejected`, the live
model redeployed `unchanged`, or a `rollback`. Replaying the lines gives the stack of promoted
models: `promoted` pushes, `rollback` pops, and the top is the live model. Each line carries the
serving settings it was decided with, so that the live model can be redeployed from the ledger
alone (`hpo rollback`, KubeRay's RayService).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from hpo.core.rundir import LEDGER
from hpo.core.storage import StorageDir


@dataclass(frozen=True)
class Candidate:
    """A sweep's best checkpoint, offered to the gate; the caller (the CLI) reads it from the
    run dir, so that serving reads no file of the runner's.

    Attributes:
        name: the sweep name; the candidates of one name compete for one live model.
        run_dir, trial_id, config: where the checkpoint came from, for the ledger and /info.
        metric, mode: the sweep's objective, which the gate compares on.
        validation_metric: the checkpoint's value of `metric` on the validation split.
    """

    name: str
    checkpoint: str
    metric: str
    mode: str
    validation_metric: float
    run_dir: str
    trial_id: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class Decision:
    name: str
    decision: str  # promoted | rejected | unchanged | rollback
    reason: str
    metric: str
    mode: str
    run_dir: str
    trial_id: str
    checkpoint: str
    checkpoint_sha256: str
    validation_metric: float | None
    test_metric: float | None
    config: dict[str, Any] = field(default_factory=dict)
    live_test_metric: float | None = None
    tolerance: float = 0.0
    serve: dict[str, Any] = field(default_factory=dict)  # the `serve:` settings it is served with
    time: float = field(default_factory=time.time)

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> Decision:
        """A ledger line as a Decision (keys it does not know, from other versions, dropped)."""
        return cls(
            **{key: value for key, value in entry.items() if key in cls.__dataclass_fields__}
        )


def read_ledger(storage: StorageDir) -> list[dict[str, Any]]:
    storage.pull(LEDGER)
    path = storage.local / LEDGER
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append(storage: StorageDir, decision: Decision) -> None:
    storage.pull(LEDGER)
    storage.local.mkdir(parents=True, exist_ok=True)
    with open(storage.local / LEDGER, "a") as ledger:
        ledger.write(json.dumps(asdict(decision)) + "\n")
    storage.push(LEDGER)


def promoted_stack(storage: StorageDir, name: str) -> list[dict[str, Any]]:
    """The promoted models of `name`, oldest first; the last one is live."""
    stack: list[dict[str, Any]] = []
    for record in read_ledger(storage):
        if record["name"] != name:
            continue
        if record["decision"] == "promoted":
            stack.append(record)
        elif record["decision"] == "rollback" and stack:
            stack.pop()
    return stack


def judge(
    candidate_metric: float | None, live: dict[str, Any] | None, *, mode: str, tolerance: float
) -> tuple[bool, str, float | None]:
    """(promote?, why, live metric) for a candidate's test metric against the live model's."""
    if live is None:
        return True, "no live model yet", None
    live_metric = live.get("test_metric")
    if candidate_metric is None or live_metric is None:
        return True, "no test split to compare on; promoted on the validation metric", live_metric
    worse_by = (
        (live_metric - candidate_metric) if mode == "max" else (candidate_metric - live_metric)
    )
    if worse_by > tolerance + 1e-12:
        return (
            False,
            (
                f"test metric {candidate_metric:.4f} is worse than the live model's "
                f"{live_metric:.4f} by {worse_by:.4f} (> tolerance {tolerance})"
            ),
            live_metric,
        )
    return (
        True,
        (f"test metric {candidate_metric:.4f} vs live {live_metric:.4f} (tolerance {tolerance})"),
        live_metric,
    )
