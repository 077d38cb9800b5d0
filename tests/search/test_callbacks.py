"""The Tune callbacks and stoppers, driven directly."""

from __future__ import annotations

from hpo.search.callbacks import SampleBudget


def test_the_budget_stops_everything_once_spent() -> None:
    stopper = SampleBudget(300)
    assert not stopper("a", {"samples": 128}) and not stopper.stop_all()
    stopper("b", {"samples": 128})
    stopper("a", {"samples": 256})  # a's running count: 256, not 128 + 256
    assert stopper.ledger.total == 384 and stopper.stop_all()
