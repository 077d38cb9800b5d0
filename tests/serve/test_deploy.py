"""Serving from the ledger alone (the RayService, rollback) checks the weights first."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path

import pytest

from hpo.core.errors import UserError
from hpo.core.storage import StorageDir
from hpo.serve import deploy, gate


def promote(storage: StorageDir, folder: Path, trial: str, weights: bytes) -> None:
    checkpoint = folder / trial
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(weights)
    gate.append(
        storage,
        gate.Decision(
            name="s",
            decision="promoted",
            reason="",
            metric="accuracy",
            mode="max",
            run_dir="r",
            trial_id=trial,
            checkpoint=str(checkpoint),
            checkpoint_sha256=hashlib.sha256(weights).hexdigest(),
            validation_metric=0.8,
            test_metric=0.8,
        ),
    )


def test_changed_weights_are_never_served(tmp_path: Path) -> None:
    storage = StorageDir.at(tmp_path / "runs")
    promote(storage, tmp_path, "first", b"weights one")
    promote(storage, tmp_path, "second", b"weights two")
    (tmp_path / "second" / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(UserError, match="weights changed since trial second was promoted"):
        deploy.service_app({"storage": str(tmp_path / "runs"), "name": "s"})
    (tmp_path / "first" / "model.safetensors").write_bytes(b"tampered too")
    with pytest.raises(UserError, match="weights changed since trial first was promoted"):
        deploy.rollback(storage, "s")
    decisions = [e["decision"] for e in gate.read_ledger(storage).entries]
    assert decisions == ["promoted", "promoted"]  # the refused rollback recorded nothing


def test_a_ledger_entry_round_trips_as_a_decision() -> None:
    entry = {
        "name": "s",
        "decision": "promoted",
        "reason": "",
        "metric": "m",
        "mode": "max",
        "run_dir": "r",
        "trial_id": "t",
        "checkpoint": "c",
        "checkpoint_sha256": "x",
        "validation_metric": 0.5,
        "test_metric": None,
        "from_a_later_version": 1,
    }
    decision = gate.Decision.from_entry(entry)
    assert asdict(decision)["trial_id"] == "t" and decision.compared_on == "none"
