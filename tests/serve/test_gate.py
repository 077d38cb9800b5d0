"""The promotion gate without Ray: its judgement (never without a comparison), the ledger it
replays (torn lines skipped), and deploys at once judged one after the other."""

from __future__ import annotations

import json
import math
import multiprocessing
import time
from dataclasses import replace
from pathlib import Path

import pytest

from hpo.core.storage import StorageDir
from hpo.serve import gate


def candidate(validation: float = 0.8, name: str = "s", trial: str = "c") -> gate.Candidate:
    return gate.Candidate(
        name=name,
        checkpoint=f"/c/{trial}",
        metric="accuracy",
        mode="max",
        validation_metric=validation,
        run_dir="r",
        trial_id=trial,
    )


def live(test: float | None, validation: float | None = 0.8) -> dict:
    return {"test_metric": test, "validation_metric": validation, "checkpoint_sha256": "live"}


def test_test_metrics_decide_when_both_have_one() -> None:
    assert gate.judge(candidate(), 0.84, None, tolerance=0).promote  # no live model yet
    worse = gate.judge(candidate(), 0.84, live(0.85), tolerance=0)
    assert not worse.promote and worse.compared_on == "test"
    assert gate.judge(candidate(), 0.84, live(0.85), tolerance=0.02).promote
    assert gate.judge(candidate(), 0.86, live(0.85), tolerance=0).promote


def test_without_a_test_metric_the_gate_compares_on_validation_and_says_so() -> None:
    missing = gate.judge(candidate(validation=0.70), None, live(0.85, validation=0.80), tolerance=0)
    assert not missing.promote and missing.compared_on == "validation"
    assert "because the candidate has no test metric" in missing.reason
    live_missing = gate.judge(candidate(validation=0.9), 0.5, live(None, 0.8), tolerance=0)
    assert live_missing.promote and live_missing.compared_on == "validation"
    assert "the live model has no test metric" in live_missing.reason


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_never_promoted(bad: float) -> None:
    judged = gate.judge(candidate(), bad, live(0.5), tolerance=0)
    assert not judged.promote and str(bad) in judged.reason
    assert not gate.judge(candidate(), bad, None, tolerance=0).promote
    nothing = gate.judge(candidate(validation=bad), None, live(None), tolerance=0)
    assert not nothing.promote and nothing.compared_on == "none"
    # not even as the first model of its name
    first = gate.judge(candidate(validation=bad), None, None, tolerance=0)
    assert not first.promote and "no finite metric" in first.reason


def record(decision: str, trial: str, name: str = "s") -> gate.Decision:
    return gate.Decision(
        name=name,
        decision=decision,
        reason="",
        metric="accuracy",
        mode="max",
        run_dir="r",
        trial_id=trial,
        checkpoint=f"/c/{trial}",
        checkpoint_sha256=trial,
        validation_metric=0.8,
        test_metric=0.8,
    )


def test_ledger_replays_promotions_and_rollbacks(tmp_path: Path) -> None:
    storage = StorageDir.at(tmp_path)
    for decision in [
        record("promoted", "a"),
        record("rejected", "b"),
        record("promoted", "c"),
        record("promoted", "z", name="other"),
        record("promoted", "d"),
        record("rollback", "d"),
    ]:
        gate.append(storage, decision)
    assert [r["trial_id"] for r in gate.promoted_stack(storage, "s")] == ["a", "c"]
    assert [r["trial_id"] for r in gate.promoted_stack(storage, "other")] == ["z"]
    assert len(gate.read_ledger(storage).entries) == 6


def test_a_torn_line_is_skipped_and_later_appends_still_work(tmp_path: Path) -> None:
    storage = StorageDir.at(tmp_path)
    gate.append(storage, record("promoted", "a"))
    with open(tmp_path / "promotions.jsonl", "a") as ledger:
        ledger.write('{"name": "s", "decision": "prom')  # a crash mid-append
    gate.append(storage, record("promoted", "b"))
    ledger = gate.read_ledger(storage)
    assert ledger.skipped == [2]
    assert [r["trial_id"] for r in gate.promoted_stack(storage, "s")] == ["a", "b"]


def _deploy(folder: str, trial: str, test_metric: float, started: float) -> None:
    """One deploy, as a separate process would do it: its test metric takes a second."""
    time.sleep(max(0.0, started - time.time()))

    def measure() -> float:
        time.sleep(1.0)
        return test_metric

    gate.decide_and_append(
        StorageDir.at(folder), candidate(trial=trial), trial, measure, tolerance=0, serve={}
    )


def test_two_deploys_at_once_are_judged_one_after_the_other(tmp_path: Path) -> None:
    """Both read an empty ledger and measure for a second; without the lock and the second
    look at the live model both would be promoted as 'no live model yet'."""
    context = multiprocessing.get_context("spawn")
    started = time.time() + 3
    deploys = [
        context.Process(target=_deploy, args=(str(tmp_path), trial, metric, started))
        for trial, metric in (("better", 0.9), ("worse", 0.5))
    ]
    for process in deploys:
        process.start()
    for process in deploys:
        process.join(60)
        assert process.exitcode == 0
    lines = [json.loads(line) for line in (tmp_path / "promotions.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    assert sum(line["reason"] == "no live model yet" for line in lines) == 1
    second = lines[1]
    assert second["live_test_metric"] == lines[0]["test_metric"]
    assert gate.promoted_stack(StorageDir.at(tmp_path), "s")[-1]["trial_id"] == "better"


@pytest.mark.parametrize("text", ["", "   \n"])
def test_an_empty_ledger_has_no_live_model(tmp_path: Path, text: str) -> None:
    (tmp_path / "promotions.jsonl").write_text(text)
    assert gate.promoted_stack(StorageDir.at(tmp_path), "s") == []


def test_the_same_checkpoint_under_another_runtime_is_judged_anew(tmp_path: Path) -> None:
    """int8 weights answer differently: the gate measures them, and a worse int8 model of the
    live checkpoint is rejected instead of being taken for the live model."""
    storage = StorageDir.at(str(tmp_path))
    torch_serve, int8_serve = {"runtime": "torch"}, {"runtime": "int8"}

    def decide(test_metric: float, serve: dict) -> gate.Decision:
        decision, _ = gate.decide_and_append(
            storage, candidate(), "same-weights", lambda: test_metric, tolerance=0, serve=serve
        )
        return decision

    assert decide(0.85, torch_serve).decision == "promoted"
    assert decide(0.0, torch_serve).decision == "unchanged"  # not measured again
    rejected = decide(0.84, int8_serve)
    assert rejected.decision == "rejected" and rejected.test_metric == 0.84
    assert decide(0.85, int8_serve).decision == "promoted"  # as good: int8 is live now
    assert decide(0.0, int8_serve).decision == "unchanged"


def selected(rule: dict, trial: str = "c") -> gate.Candidate:
    return replace(candidate(trial=trial), select=rule)


def test_a_latency_limit_is_checked_on_the_gates_own_measurement() -> None:
    """max_latency_ms: a candidate that serves slower here is refused whatever its accuracy;
    within the limit, its metric is compared as always."""
    accuracy = gate.judge(candidate(), 0.90, live(0.85), tolerance=0)
    slow = gate.judge_selected(
        selected({"max_latency_ms": 20}),
        accuracy,
        gate.Latencies(25.0, None),
        0.90,
        live(0.85),
        tolerance=0,
    )
    assert not slow.promote and slow.compared_on == "latency_ms" and "25.00 ms" in slow.reason
    fast = gate.judge_selected(
        selected({"max_latency_ms": 20}),
        accuracy,
        gate.Latencies(12.0, None),
        0.90,
        live(0.85),
        tolerance=0,
    )
    assert fast.promote and fast.compared_on == "test" and "12.00 ms <= 20" in fast.reason


@pytest.mark.parametrize(
    ("test_metric", "latency", "promote"),
    [
        (0.845, 10.0, True),  # within one point of the live model, faster
        (0.845, 21.0, True),  # as fast, within the 10% noise margin
        (0.845, 30.0, False),  # slower: fastest_within picked it for speed
        (0.83, 10.0, False),  # faster, but more than one point less accurate
    ],
)
def test_fastest_within_compares_latency_with_the_live_model(
    test_metric: float, latency: float, promote: bool
) -> None:
    rule = {"fastest_within": 0.01}
    accuracy = gate.judge(candidate(), test_metric, live(0.85), tolerance=0)
    judged = gate.judge_selected(
        selected(rule),
        accuracy,
        gate.Latencies(latency, 20.0),
        test_metric,
        live(0.85),
        tolerance=0,
    )
    assert judged.promote is promote
    assert "vs live 20.00 ms" in judged.reason


def test_the_ledger_says_which_rule_picked_the_candidate_and_its_latencies(tmp_path: Path) -> None:
    storage = StorageDir.at(str(tmp_path))
    timed: list[str] = []

    def latency(checkpoint: str) -> float:
        timed.append(checkpoint)
        return {"/c/first": 20.0, "/c/second": 8.0}[checkpoint]

    def decide(trial: str, test_metric: float) -> gate.Decision:
        decision, _ = gate.decide_and_append(
            storage,
            selected({"fastest_within": 0.01}, trial=trial),
            trial,
            lambda: test_metric,
            tolerance=0,
            serve={},
            latency_ms=latency,
        )
        return decision

    decide("first", 0.85)
    second = decide("second", 0.845)
    assert second.decision == "promoted" and second.compared_on == "latency_ms"
    assert (second.latency_ms, second.live_latency_ms) == (8.0, 20.0)
    assert timed == ["/c/first", "/c/second", "/c/first"]  # side by side with the live model
    entry = gate.read_ledger(storage).entries[-1]
    assert entry["selected_by"] == "fastest_within: 0.01" and entry["latency_ms"] == 8.0
