"""Where a training loop runs: inside the Tune trial's own process, or as a Ray Train worker.

The loop in `trainables.loop` talks only to this small interface, so the very same code runs
single-process trials and multi-worker DDP trials.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

import torch


class TrialSession(Protocol):
    world_rank: int
    world_size: int
    device: torch.device
    trial_id: str
    """The Tune trial's id: a checkpoint records who wrote it, so a trial restored from another
    trial's checkpoint (PBT's exploit) reports its parent."""
    checkpoints_ahead_of_tune: bool
    """Whether a restored checkpoint may be one whose report Tune never got: Ray Train keeps
    its own checkpoints, so a sweep interrupted between the two leaves one."""

    def restored_checkpoint(self) -> AbstractContextManager[str | None]:
        """A local folder with the checkpoint to resume from (None for a new trial), valid
        while the context is open."""

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        """Reports one evaluation; every rank calls it, rank 0 with the checkpoint folder."""


def _node_id() -> str:
    """The Ray node this rank runs on: trials.csv shows where each trial ran."""
    import ray

    return ray.get_runtime_context().get_node_id()


def _train_checkpoint(checkpoint_dir: str | None):
    from ray.train import Checkpoint

    return None if checkpoint_dir is None else Checkpoint.from_directory(checkpoint_dir)


@contextlib.contextmanager
def checkpoint_folder(checkpoint: Any) -> Iterator[str | None]:
    """A Ray checkpoint as a local folder: its own folder where it is local, else a download
    deleted on exit (`to_directory` would leave a copy in /tmp at every restore)."""
    if checkpoint is None:
        yield None
        return
    with checkpoint.as_directory() as folder:
        yield folder


def _tune_checkpoint(checkpoint_dir: str | None):
    from ray.tune import Checkpoint

    return None if checkpoint_dir is None else Checkpoint.from_directory(checkpoint_dir)


class TuneTrialSession:
    """Training in the Tune trial's process: reports and checkpoints go straight to Tune."""

    world_rank = 0
    world_size = 1
    checkpoints_ahead_of_tune = False

    def __init__(self, use_gpu: bool) -> None:
        from ray import tune

        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.trial_id = tune.get_context().get_trial_id()

    def restored_checkpoint(self) -> AbstractContextManager[str | None]:
        from ray import tune

        return checkpoint_folder(tune.get_checkpoint())

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        from ray import tune

        metrics = {**metrics, "node_id": _node_id()}
        tune.report(metrics, checkpoint=_tune_checkpoint(checkpoint_dir))


class RayTrainSession:
    """Training as one Ray Train worker; Ray Train has set up torch.distributed (gloo/nccl)."""

    checkpoints_ahead_of_tune = True

    def __init__(self) -> None:
        import ray.train
        import ray.train.torch

        context = ray.train.get_context()
        self.world_rank = context.get_world_rank()
        self.world_size = context.get_world_size()
        self.device = ray.train.torch.get_device()
        self.trial_id = context.get_experiment_name()  # the launcher names the run after it
        self.nodes = self._worker_nodes()

    def _worker_nodes(self) -> str:
        """The Ray nodes of all workers, in rank order without repeats: rank 0 reports them, so
        trials.csv shows which nodes a DDP trial spanned."""
        import torch.distributed as dist

        nodes = [_node_id()]
        if dist.is_initialized() and self.world_size > 1:
            nodes = [None] * self.world_size
            dist.all_gather_object(nodes, _node_id())
        return ",".join(dict.fromkeys(nodes))

    def restored_checkpoint(self) -> AbstractContextManager[str | None]:
        import ray.train

        return checkpoint_folder(ray.train.get_checkpoint())

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        import ray.train

        metrics = {**metrics, "node_id": self.nodes}
        ray.train.report(metrics, checkpoint=_train_checkpoint(checkpoint_dir))
