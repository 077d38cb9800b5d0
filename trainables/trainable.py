"""The Tune function trainable of a sweep: runs `train_model` in the trial's own process, or in
a Ray Train `TorchTrainer` (several DDP workers, GPUs) that reports back to Tune."""

from __future__ import annotations

import os
from typing import Any

from hpo.core.rundir import TRAIN_RUNS
from hpo.trainables.config import Hyperparameters
from hpo.trainables.encoding import EncodedData
from hpo.trainables.job import TrainJob
from hpo.trainables.loop import train_model
from hpo.trainables.sessions import RayTrainSession, TuneTrialSession


def hyperparameters(config: dict[str, Any], job: TrainJob) -> Hyperparameters:
    """A trial's hyperparameters: its config, with `train.strategy` unless it searches one."""
    return Hyperparameters.model_validate({"strategy": job.train.strategy or "full", **config})


def _train_in_trial(config: dict[str, Any], job: TrainJob, data: EncodedData) -> None:
    train_model(hyperparameters(config, job), job, data, TuneTrialSession(job.use_gpu))


def _train_worker(loop_config: dict[str, Any]) -> None:
    job = loop_config["job"]
    hp = hyperparameters(loop_config["hyperparameters"], job)
    train_model(hp, job, loop_config["data"], RayTrainSession())


def _train_with_ray_train(config: dict[str, Any], job: TrainJob, data: EncodedData) -> None:
    """One Ray Train run per trial, named after the trial: when Tune pauses and later restarts
    the trial, Ray Train finds its run in storage and resumes from the latest checkpoint."""
    from ray import tune
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={"hyperparameters": config, "job": job, "data": data},
        torch_config=TorchConfig(backend="nccl" if job.use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=job.train.workers,
            use_gpu=job.use_gpu,
            resources_per_worker={"CPU": job.threads, **job.train.resources_per_worker},
            placement_strategy=job.train.placement_strategy.upper(),
        ),
        run_config=RunConfig(
            name=tune.get_context().get_trial_id(),
            storage_path=os.path.join(job.run_dir, TRAIN_RUNS),
            callbacks=[TuneReportCallback()],
            # a lost worker restarts the group from the latest checkpoint, within the trial
            failure_config=FailureConfig(max_failures=job.max_failures),
            checkpoint_config=CheckpointConfig(
                num_to_keep=1,
                checkpoint_score_attribute=job.metric,
                checkpoint_score_order=job.mode,
            ),
        ),
    )
    trainer.fit()


def make_trainable(job: TrainJob, data: EncodedData):
    """The trainable to hand to `tune.Tuner`, with the resources one trial holds.

    With the ray_train launcher the trial itself holds almost nothing: Ray Train schedules its
    workers' CPUs and GPUs on its own (Train V2), outside the trial's resources.
    """
    from ray import tune

    if job.launcher == "in_trial":
        trainable = tune.with_parameters(_train_in_trial, job=job, data=data)
        bundle = {
            "CPU": job.threads,
            "GPU": 1 if job.use_gpu else 0,
            **job.train.resources_per_worker,
        }
    else:
        trainable = tune.with_parameters(_train_with_ray_train, job=job, data=data)
        bundle = {"CPU": 0.01}
    return tune.with_resources(trainable, tune.PlacementGroupFactory([bundle]))
