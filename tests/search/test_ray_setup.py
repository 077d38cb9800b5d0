"""How an embedded Ray shares this machine's cores between trials."""

from __future__ import annotations

from unittest import mock

import pytest

from hpo.search.ray_setup import cpus_needed, threads_per_worker
from hpo.search.sweepfile import parse_sweep
from tests.helpers import tiny_sweep


def sweep_of(trials: int, concurrent: int, workers: int = 1, cpus: int | str = "auto"):
    tree = tiny_sweep("unused-model", "runs")
    tree["search"].update(num_samples=trials, max_concurrent=concurrent)
    tree["train"] = {"workers": workers, "cpus_per_worker": cpus}
    return parse_sweep(tree)


@pytest.mark.parametrize(
    ("trials", "concurrent", "workers", "threads"),
    [
        (8, 2, 1, 4),  # two trials at once share 8 cores
        (8, 1, 1, 8),  # a trial alone gets every core
        (1, 4, 1, 8),  # one trial, however many could run: every core
        (8, 4, 2, 1),  # eight workers at once: one core each
        (8, 16, 1, 1),  # never less than one
    ],
)
def test_cores_are_shared_by_the_trials_that_can_run_at_once(
    trials: int, concurrent: int, workers: int, threads: int
) -> None:
    with mock.patch("os.cpu_count", return_value=8):
        sweep = sweep_of(trials, concurrent, workers)
        assert threads_per_worker(sweep, embedded=True) == threads
        assert threads_per_worker(sweep, embedded=False) == 1  # Ray spreads them on a cluster
        assert cpus_needed(sweep) == concurrent * (workers * threads + 1)


def test_cpus_per_worker_is_taken_as_given() -> None:
    assert threads_per_worker(sweep_of(8, 2, cpus=3), embedded=True) == 3
