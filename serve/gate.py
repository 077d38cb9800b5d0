"""The promotion gate and its ledger, `<storage>/promotions.jsonl`.

Each line is one decision about a sweep name: a candidate `promoted` or `rejected`, the live
model redeployed `unchanged`, or a `rollback`. Replaying the lines gives the stack of promoted
models: `promoted` pushes, `rollback` pops, and the top is the live model. Each line carries the
serving settings it was decided with, so that the live model can be redeployed from the ledger
alone (`hpo rollback`, KubeRay's RayService).

The gate never promotes without a comparison: on the test split when both models have a test
metric, else on the validation metric, and the line says which (`compared_on`); a candidate
whose test metric is NaN or infinite, or that has no finite metric at all, is refused.
A candidate that `serve.select` picked from a multi-objective sweep's front is also judged on
latency, measured here beside the live model's (`judge_selected`).
Deciding and appending happen under a lock on the ledger, with the live model read again
inside it, so two deploys at once are judged one after the other. The lock is a file lock
on this machine: in a bucket, an append downloads the ledger, adds a line and uploads it whole,
so deploy one storage from one machine at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
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
        select: the `serve.select` rule that picked it from a multi-objective sweep's front
            ({"fastest_within": 0.01} or {"max_latency_ms": 20}); the gate judges it on
            latency too.
    """

    name: str
    checkpoint: str
    metric: str
    mode: str
    validation_metric: float
    run_dir: str
    trial_id: str
    config: dict[str, Any] = field(default_factory=dict)
    select: dict[str, float] | None = None


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
    compared_on: str = "none"  # test | validation | latency_ms | none (no live model, refused)
    selected_by: str | None = None  # the serve.select rule that picked the candidate
    latency_ms: float | None = None  # its latency as served, measured by the gate
    live_latency_ms: float | None = None
    serve: dict[str, Any] = field(default_factory=dict)  # the `serve:` settings it is served with
    time: float = field(default_factory=time.time)

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> Decision:
        """A ledger line as a Decision (keys it does not know, from other versions, dropped)."""
        return cls(
            **{key: value for key, value in entry.items() if key in cls.__dataclass_fields__}
        )


@dataclass(frozen=True)
class Ledger:
    """The ledger's lines, and the lines that could not be read (a crash mid-append, a
    hand edit): those are reported and skipped, never fatal to later deploys."""

    entries: list[dict[str, Any]]
    skipped: list[int]  # line numbers, from 1


def read_ledger(storage: StorageDir) -> Ledger:
    storage.pull(LEDGER)
    path = storage.local / LEDGER
    if not path.is_file():
        return Ledger([], [])
    entries, skipped = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            skipped.append(number)
            continue
        if isinstance(entry, dict) and {"name", "decision"} <= set(entry):
            entries.append(entry)
        else:
            skipped.append(number)
    return Ledger(entries, skipped)


@contextlib.contextmanager
def locked(storage: StorageDir) -> Iterator[None]:
    """Holds the ledger's lock (a file lock beside it) for a read-decide-append."""
    storage.local.mkdir(parents=True, exist_ok=True)
    with open(storage.local / f".{LEDGER}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def append(storage: StorageDir, decision: Decision) -> None:
    """Adds one line in one write, on a line of its own (after a torn last line, too)."""
    storage.pull(LEDGER)
    storage.local.mkdir(parents=True, exist_ok=True)
    path = storage.local / LEDGER
    line = json.dumps(asdict(decision)) + "\n"
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as ledger:
            ledger.seek(-1, os.SEEK_END)
            if ledger.read(1) != b"\n":  # a torn last line: start ours on a new one
                line = "\n" + line
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(descriptor, line.encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    storage.push(LEDGER)


def stack_of(entries: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The promoted models of `name` in ledger entries, oldest first; the last one is live."""
    stack: list[dict[str, Any]] = []
    for entry in entries:
        if entry["name"] != name:
            continue
        if entry["decision"] == "promoted":
            stack.append(entry)
        elif entry["decision"] == "rollback" and stack:
            stack.pop()
    return stack


def promoted_stack(storage: StorageDir, name: str) -> list[dict[str, Any]]:
    """The promoted models of `name`, oldest first; the last one is live."""
    return stack_of(read_ledger(storage).entries, name)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


@dataclass(frozen=True)
class Judgement:
    promote: bool
    reason: str
    compared_on: str  # test | validation | none
    live_test_metric: float | None


def judge(
    candidate: Candidate,
    test_metric: float | None,
    live: dict[str, Any] | None,
    *,
    tolerance: float,
) -> Judgement:
    """A candidate (with its test metric, None without a test split) against the live model:
    on the test split where both have a finite test metric, else on validation."""
    live_test = None if live is None else live.get("test_metric")
    if test_metric is not None and not math.isfinite(test_metric):
        return Judgement(False, f"the candidate's test metric is {test_metric}", "none", live_test)
    if live is None:
        if not (_finite(test_metric) or _finite(candidate.validation_metric)):
            return Judgement(False, "the candidate has no finite metric", "none", None)
        return Judgement(True, "no live model yet", "none", None)
    if _finite(test_metric) and _finite(live_test):
        basis, mine, theirs = "test", test_metric, live_test
    else:
        basis, mine, theirs = (
            "validation",
            candidate.validation_metric,
            live.get("validation_metric"),
        )
        if not (_finite(mine) and _finite(theirs)):
            return Judgement(
                False,
                "no finite test or validation metric of both models to compare on",
                "none",
                live_test,
            )
    worse_by = (theirs - mine) if candidate.mode == "max" else (mine - theirs)
    compared = f"{basis} metric {mine:.4f} vs live {theirs:.4f} (tolerance {tolerance})"
    if basis == "validation":
        missing = "the candidate" if not _finite(test_metric) else "the live model"
        compared += f"; compared on validation because {missing} has no test metric"
    if worse_by > tolerance + 1e-12:
        return Judgement(
            False, f"worse than the live model's by {worse_by:.4f}: {compared}", basis, live_test
        )
    return Judgement(True, compared, basis, live_test)


SLOWER_MARGIN = 1.1
"""A latency within 10% of the live model's counts as no slower: two measurements of the same
model differ by a few percent."""


@dataclass(frozen=True)
class Latencies:
    candidate: float
    live: float | None


def judge_selected(
    candidate: Candidate,
    accuracy: Judgement,
    latencies: Latencies,
    test_metric: float | None,
    live: dict[str, Any] | None,
    *,
    tolerance: float,
) -> Judgement:
    """A candidate that `serve.select` picked, judged on the objective that picked it:
    `max_latency_ms` is a limit its served latency must meet (then the metric is compared as
    always); `fastest_within: d` compares latencies, the candidate no slower than the live
    model and its metric within d (or the tolerance) of the live model's."""
    rule, mine = candidate.select or {}, latencies.candidate
    if "max_latency_ms" in rule:
        limit = rule["max_latency_ms"]
        if mine > limit:
            return Judgement(
                False,
                f"serves in {mine:.2f} ms here, over serve.select max_latency_ms {limit:g}",
                "latency_ms",
                accuracy.live_test_metric,
            )
        return replace(accuracy, reason=f"serves in {mine:.2f} ms <= {limit:g}; {accuracy.reason}")
    if live is None or latencies.live is None:
        return accuracy
    within = max(tolerance, rule["fastest_within"])
    close = judge(candidate, test_metric, live, tolerance=within)
    compared = f"latency {mine:.2f} ms vs live {latencies.live:.2f} ms"
    if not close.promote:
        return replace(close, reason=f"{close.reason} (fastest_within {within:g}); {compared}")
    if mine > latencies.live * SLOWER_MARGIN:
        return Judgement(
            False, f"slower than the live model: {compared}", "latency_ms", close.live_test_metric
        )
    return Judgement(True, f"{compared}; {close.reason}", "latency_ms", close.live_test_metric)


def _runtime(serve: dict[str, Any] | None) -> str:
    return (serve or {}).get("runtime", "torch")


def _same_model(live: dict[str, Any] | None, sha256: str, serve: dict[str, Any]) -> bool:
    """Whether the live model is these weights, run the same way (int8 weights answer
    differently: the same checkpoint under another runtime is a new candidate)."""
    return (
        live is not None
        and live["checkpoint_sha256"] == sha256
        and _runtime(live.get("serve")) == _runtime(serve)
    )


def _rule_text(rule: dict[str, float] | None) -> str | None:
    return None if not rule else ", ".join(f"{key}: {value:g}" for key, value in rule.items())


def decide_and_append(
    storage: StorageDir,
    candidate: Candidate,
    sha256: str,
    test_metric: Callable[[], float | None],
    *,
    tolerance: float,
    serve: dict[str, Any],
    latency_ms: Callable[[str], float] | None = None,
) -> tuple[Decision, dict[str, Any]]:
    """Judges a candidate against the live model of its name and records the decision;
    returns it and the live model afterwards. `test_metric` is called only when the candidate
    is not the live model already, before the lock is taken (it takes seconds). A candidate
    that `serve.select` picked is also timed, with the live model, by `latency_ms` (a
    checkpoint's served latency), in the lock: the two are measured side by side."""
    live = (promoted_stack(storage, candidate.name) or [None])[-1]
    unchanged = _same_model(live, sha256, serve)
    latencies: Latencies | None = None
    measured = None if unchanged else test_metric()
    with locked(storage):
        live = (promoted_stack(storage, candidate.name) or [None])[-1]  # again, in the lock
        if _same_model(live, sha256, serve):
            verdict = Judgement(
                True, "this checkpoint is already the live model", "none", live["test_metric"]
            )
            decision_name, measured = "unchanged", live["test_metric"]
        else:
            if unchanged:  # another deploy replaced it meanwhile: this one needs its metric
                measured = test_metric()
            verdict = judge(candidate, measured, live, tolerance=tolerance)
            if candidate.select and latency_ms is not None:
                latencies = Latencies(
                    latency_ms(candidate.checkpoint),
                    None if live is None else latency_ms(live["checkpoint"]),
                )
                verdict = judge_selected(
                    candidate, verdict, latencies, measured, live, tolerance=tolerance
                )
            decision_name = "promoted" if verdict.promote else "rejected"
        decision = Decision(
            name=candidate.name,
            decision=decision_name,
            reason=verdict.reason,
            metric=candidate.metric,
            mode=candidate.mode,
            run_dir=candidate.run_dir,
            trial_id=candidate.trial_id,
            checkpoint=candidate.checkpoint,
            checkpoint_sha256=sha256,
            validation_metric=candidate.validation_metric,
            test_metric=measured,
            config=candidate.config,
            live_test_metric=verdict.live_test_metric,
            tolerance=tolerance,
            compared_on=verdict.compared_on,
            serve=serve,
            selected_by=_rule_text(candidate.select),
            latency_ms=None if latencies is None else round(latencies.candidate, 3),
            live_latency_ms=None
            if latencies is None or latencies.live is None
            else round(latencies.live, 3),
        )
        append(storage, decision)
        live = promoted_stack(storage, candidate.name)[-1:] or [None]
    return decision, live[0]
