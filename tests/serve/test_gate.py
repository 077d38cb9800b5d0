"""The promotion gate without Ray: its judgement, and the ledger it replays."""

from __future__ import annotations

from pathlib import Path

from hpo.core.storage import StorageDir
from hpo.serve import gate


def test_gate_judges_against_the_live_model() -> None:
    live = {"test_metric": 0.85}
    assert gate.judge(0.84, None, mode="max", tolerance=0.0)[0]
    assert not gate.judge(0.84, live, mode="max", tolerance=0.0)[0]
    assert gate.judge(0.84, live, mode="max", tolerance=0.02)[0]
    assert gate.judge(0.86, live, mode="max", tolerance=0.0)[0]
    assert not gate.judge(0.40, {"test_metric": 0.35}, mode="min", tolerance=0.01)[0]
    promote, reason, _ = gate.judge(None, live, mode="max", tolerance=0.0)
    assert promote and "no test split" in reason


def test_ledger_replays_promotions_and_rollbacks(tmp_path: Path) -> None:
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
            checkpoint_sha256="x",
            validation_metric=0.8,
            test_metric=0.8,
        )

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
    assert len(gate.read_ledger(storage)) == 6
