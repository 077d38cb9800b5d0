"""The Tune callbacks and stoppers, driven directly."""

from __future__ import annotations

from pathlib import Path

from hpo.search.callbacks import SampleBudget


def test_the_budget_stops_everything_once_spent(tmp_path: Path) -> None:
    stopper = SampleBudget(300, str(tmp_path))
    assert not stopper("a", {"samples": 128}) and not stopper.stop_all()
    stopper("b", {"samples": 128})
    stopper("a", {"samples": 256})  # a's running count: 256, not 128 + 256
    assert stopper.ledger.total == 384 and stopper.stop_all()


def test_a_restored_budget_counts_the_trials_that_ended_before(finished_run: Path) -> None:
    """Tune restores a stopper as pickled at the start: it catches up from the results."""
    import pickle

    stopper = pickle.loads(pickle.dumps(SampleBudget(576, str(finished_run))))
    stopper("new", {"samples": 64})
    assert stopper.ledger.total == 2 * 256 + 64 and stopper.stop_all()
