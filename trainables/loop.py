"""The per-worker fine-tuning loop, read top to bottom in `train_model`: set up the model and
optimizer (restored when resuming), train in length-grouped batches, evaluate and report (with a
checkpoint) at fixed fractions of an epoch. Ray appears only behind `TrialSession`."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from hpo.trainables.checkpoints import (
    TrainingState,
    checkpoint_bytes,
    restore_training_state,
    save_checkpoint,
    staging_folder,
)
from hpo.trainables.config import Hyperparameters
from hpo.trainables.costs import serving_costs
from hpo.trainables.encoding import EncodedData, EncodedSplit, collate, epoch_batches
from hpo.trainables.job import TrainJob
from hpo.trainables.metrics import compute_metrics
from hpo.trainables.sessions import TrialSession
from hpo.trainables.strategies import (
    apply_strategy,
    is_adapted,
    load_trained_state,
    model_to_save,
    trainable_parameters,
    trained_state,
)


@dataclass(frozen=True)
class StepPlan:
    """Optimizer steps of a trial and the steps after which it evaluates."""

    num_examples: int
    batch_size: int
    total_steps: int
    steps_per_epoch: int
    eval_steps: frozenset[int]

    @classmethod
    def make(cls, num_examples: int, batch_size: int, job: TrainJob) -> StepPlan:
        steps_per_epoch = math.ceil(num_examples / batch_size)
        total = max(1, math.ceil(job.max_epochs * steps_per_epoch))
        reports = job.num_reports
        evals = frozenset(max(1, round(j * total / reports)) for j in range(1, reports + 1))
        return cls(num_examples, batch_size, total, steps_per_epoch, evals)

    def epoch(self, step: int) -> float:
        return step / self.steps_per_epoch

    def samples(self, step: int) -> int:
        """Training examples seen after `step` steps (the last batch of an epoch is smaller)."""
        full_epochs, within = divmod(step, self.steps_per_epoch)
        return full_epochs * self.num_examples + min(within * self.batch_size, self.num_examples)


@dataclass(frozen=True)
class Precision:
    """How batches are shaped and computed on this device, decided once per trial.

    Attributes:
        amp: the autocast dtype (bf16 where the GPU has it, else fp16 with a gradient scaler),
            or None; `torch.cuda.is_bf16_supported()` is too slow to ask every step.
        pad_multiple: batch lengths are rounded up to a multiple of this.
    """

    amp: torch.dtype | None
    pad_multiple: int

    @classmethod
    def for_device(cls, device: torch.device, job: TrainJob) -> Precision:
        on_cuda = device.type == "cuda"
        amp = None
        if on_cuda and job.train.amp is not False:
            amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        pad_multiple = job.train.pad_to_multiple_of
        if pad_multiple == "auto":
            pad_multiple = 8 if on_cuda else 1
        return cls(amp, pad_multiple)

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.amp)


def _load_model(
    source: str, data: EncodedData, hp: Hyperparameters, *, new_head: bool, offline: bool
) -> Any:
    """The model with a classifier for our labels. A base model's own head (another task's
    labels, or none) is replaced by a fresh one of the right size (`new_head`)."""
    from transformers import AutoModelForSequenceClassification

    overrides: dict[str, Any] = {}
    if hp.dropout is not None:
        overrides = {"hidden_dropout_prob": hp.dropout, "attention_probs_dropout_prob": hp.dropout}
    if hp.num_layers is not None:  # the lowest layers' weights load, the others are left out
        overrides["num_hidden_layers"] = _layers_kept(source, hp.num_layers, offline)
    return AutoModelForSequenceClassification.from_pretrained(
        source,
        num_labels=len(data.labels.names),
        id2label=data.labels.id2label,
        label2id=data.labels.label2id,
        ignore_mismatched_sizes=new_head,
        local_files_only=offline,
        **overrides,
    )


def _layers_kept(source: str, num_layers: int, offline: bool) -> int:
    """`num_layers`, checked against the model's own depth (a checkpoint of a trial that kept
    fewer layers already has that depth)."""
    from transformers import AutoConfig

    depth = getattr(
        AutoConfig.from_pretrained(source, local_files_only=offline), "num_hidden_layers", None
    )
    if depth is None:
        raise ValueError(f"num_layers: the model {source} does not say how many layers it has")
    if num_layers > depth:
        raise ValueError(f"num_layers={num_layers}, but the model has only {depth} layers")
    return num_layers


def _optimizer(model: torch.nn.Module, hp: Hyperparameters) -> torch.optim.Optimizer:
    """AdamW without weight decay on biases and LayerNorm weights, as BERT was trained.

    The fused implementation matters on CPU: for MiniLM it cuts the optimizer step from ~0.12 s
    to ~0.02 s, about half of a whole training step on 16 short sentences.
    """
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": hp.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=hp.learning_rate, fused=True)


def _lr_scheduler(optimizer: torch.optim.Optimizer, hp: Hyperparameters, plan: StepPlan) -> Any:
    from transformers import get_scheduler

    name = {"constant": "constant_with_warmup"}.get(hp.lr_schedule, hp.lr_schedule)
    return get_scheduler(
        name,
        optimizer,
        num_warmup_steps=round(hp.warmup_ratio * plan.total_steps),
        num_training_steps=plan.total_steps,
    )


def _take_hyperparameters(
    optimizer: torch.optim.Optimizer, scheduler: Any, hp: Hyperparameters
) -> None:
    """After a restore, the trial's own learning rate and weight decay rather than those saved
    with the optimizer: the same values when a trial resumes its own checkpoint, new ones when
    PBT has copied another trial's checkpoint and perturbed its hyperparameters."""
    optimizer.param_groups[0]["weight_decay"] = hp.weight_decay  # the decayed group
    scheduler.base_lrs = [hp.learning_rate] * len(optimizer.param_groups)
    for group, factor in zip(optimizer.param_groups, scheduler.lr_lambdas, strict=True):
        group["initial_lr"] = hp.learning_rate
        group["lr"] = hp.learning_rate * factor(scheduler.last_epoch)


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    split: EncodedSplit,
    *,
    pad_token_id: int,
    precision: Precision,
    batch_size: int,
    session: TrialSession,
) -> dict[str, float]:
    """Metrics on a split; each rank scores a share, sorted by length to pad little."""
    was_training = model.training
    model.eval()
    mine = np.argsort(split.lengths, kind="stable")[session.world_rank :: session.world_size]
    logits = []
    for start in range(0, len(mine), batch_size):
        indices = mine[start : start + batch_size]
        batch = collate(split, indices, pad_token_id, precision.pad_multiple)
        batch = _to_device(batch, session.device)
        batch.pop("labels")
        with precision.autocast(session.device):
            logits.append(model(**batch).logits.float().cpu().numpy())
    shares = [(mine, np.concatenate(logits) if logits else np.zeros((0, 0)))]
    if session.world_size > 1:
        shares = [None] * session.world_size
        dist.all_gather_object(shares, (mine, np.concatenate(logits)))
    order = np.concatenate([indices for indices, _ in shares])
    all_logits = np.concatenate([values for _, values in shares])
    model.train(was_training)
    return compute_metrics(all_logits[np.argsort(order)], split.labels)


def _mean_across_ranks(total: float, count: int, session: TrialSession) -> float:
    if session.world_size > 1:
        sums = torch.tensor([total, float(count)], dtype=torch.float64)
        dist.all_reduce(sums)
        total, count = sums.tolist()
    return total / max(count, 1)


def _batches_from(
    step: int, plan: StepPlan, hp: Hyperparameters, data: EncodedData, group_by_length: bool
) -> Iterator[np.ndarray]:
    """The global batches still to train on after `step` steps, across epochs; each epoch's
    order depends only on the seed and the epoch, so a resumed trial sees the same batches."""
    while step < plan.total_steps:
        epoch = step // plan.steps_per_epoch
        batches = epoch_batches(
            data.train.lengths,
            hp.batch_size,
            seed=hp.seed * 100_003 + epoch,
            group_by_length=group_by_length,
        )
        for indices in batches[step - epoch * plan.steps_per_epoch :]:
            yield indices
            step += 1
            if step >= plan.total_steps:
                return


class _Throughput:
    """Training loss and samples per second since the last report."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.loss_sum, self.count, self.steps = 0.0, 0, 0
        self.started = time.perf_counter()

    def add(self, loss: float, size: int) -> None:
        self.loss_sum += loss * size
        self.count += size
        self.steps += 1

    def summary(self, session: TrialSession, batch_size: int) -> dict[str, float]:
        seconds = time.perf_counter() - self.started
        return {
            "train_loss": _mean_across_ranks(self.loss_sum, self.count, session),
            "train_samples_per_s": self.steps * batch_size / seconds,
        }


class _Trial:
    """One trial's training state, set up from its hyperparameters: the model (restored from a
    checkpoint when resuming), optimizer, LR schedule and step count, and what it trains on and
    reports to."""

    def __init__(
        self,
        hp: Hyperparameters,
        job: TrainJob,
        data: EncodedData,
        session: TrialSession,
        restored: str | None,
    ) -> None:
        from transformers import AutoTokenizer

        self.hp, self.job, self.data, self.session = hp, job, data, session
        device = session.device
        self.precision = Precision.for_device(device, job)
        torch.manual_seed(hp.seed)  # the new classifier head starts the same in every trial
        # A lora checkpoint holds merged weights: a resumed lora trial wraps the base model
        # again and takes its adapters from the training state.
        source = restored if restored is not None and hp.strategy != "lora" else job.model_source
        model = _load_model(
            source, data, hp, new_head=source == job.model_source, offline=job.offline
        )
        self.model = apply_strategy(model, hp).to(device)
        self.trainable_params = trainable_parameters(self.model)
        self.serving_costs: dict[str, float] = {}  # measured at the first evaluation
        self.tokenizer = AutoTokenizer.from_pretrained(
            job.model_source, local_files_only=job.offline
        )
        self.wrapped = self.model  # or its DDP wrapper, which the forward pass goes through
        if session.world_size > 1:
            device_ids = [device.index] if device.type == "cuda" else None
            self.wrapped = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=device_ids
            )
        self.plan = StepPlan.make(len(data.train), hp.batch_size, job)
        self.optimizer = _optimizer(self.model, hp)
        self.scheduler = _lr_scheduler(self.optimizer, hp, self.plan)
        self.step, self.reported = 0, {}  # reported: the metrics saved with the checkpoint
        self.parent: dict[str, Any] = {}  # PBT: the trial whose checkpoint this one took over
        if restored is not None:
            state = restore_training_state(restored, self.optimizer, self.scheduler)
            self.step, self.reported = state.step, state.metrics
            if is_adapted(self.model):
                load_trained_state(self.model, state.adapters)
            if state.trial_id not in (None, session.trial_id):
                self.parent = {"parent": state.trial_id, "parent_epoch": self.plan.epoch(self.step)}
            _take_hyperparameters(self.optimizer, self.scheduler, hp)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision.amp == torch.float16)

    @property
    def finished(self) -> bool:
        return self.step >= self.plan.total_steps

    def train_step(self, indices: np.ndarray) -> tuple[float, int]:
        """One optimizer step on this rank's share of a global batch; returns (loss,
        examples)."""
        session, precision = self.session, self.precision
        mine = indices[session.world_rank :: session.world_size]
        batch = collate(self.data.train, mine, self.data.pad_token_id, precision.pad_multiple)
        batch = _to_device(batch, session.device)
        labels = batch.pop("labels")
        with precision.autocast(session.device):
            logits = self.wrapped(**batch).logits
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.hp.label_smoothing)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.hp.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return loss.item(), len(labels)

    def evaluate_and_report(self, meter: _Throughput) -> None:
        """Validation metrics and training statistics, reported with a checkpoint (rank 0). The
        training statistics are taken first: samples/s counts training, not the evaluation."""
        training = meter.summary(self.session, self.hp.batch_size)
        metrics = evaluate(
            self.model,
            self.data.validation,
            pad_token_id=self.data.pad_token_id,
            precision=self.precision,
            batch_size=self.job.train.eval_batch_size,
            session=self.session,
        )
        metrics.update(
            training,
            epoch=self.plan.epoch(self.step),
            step=self.step,
            samples=self.plan.samples(self.step),
            learning_rate=self.scheduler.get_last_lr()[0],
            trainable_params=self.trainable_params,
            **self.parent,
        )
        self.parent = {}  # reported once, with the first evaluation after the copy
        if self.job.serving is not None and self.session.world_rank == 0:
            if not self.serving_costs:
                self.serving_costs = serving_costs(
                    model_to_save(self.model),
                    self.tokenizer,
                    self.data.validation,
                    self.job.serving,
                )
            metrics.update(self.serving_costs)
        if self.session.world_rank != 0:
            self.session.report(metrics, None)
            return
        with staging_folder(checkpoint_bytes(self.model, self.optimizer)) as folder:
            save_checkpoint(
                folder,
                model_to_save(self.model),
                self.tokenizer,
                TrainingState(
                    self.optimizer,
                    self.scheduler,
                    self.step,
                    metrics,
                    self.session.trial_id,
                    trained_state(self.model),
                ),
            )
            self.session.report(metrics, folder)


def _quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def train_model(
    hp: Hyperparameters, job: TrainJob, data: EncodedData, session: TrialSession
) -> None:
    """Fine-tunes one model with one set of hyperparameters, reporting after each evaluation."""
    _quiet_transformers()
    torch.set_num_threads(job.threads)
    with session.restored_checkpoint() as restored:
        trial = _Trial(hp, job, data, session, restored)
        if trial.finished and trial.reported and session.checkpoints_ahead_of_tune:
            # Ray Train saved the final checkpoint of a trial that was interrupted before Tune
            # received its last report: report it again, or the trial would end without it.
            session.report(trial.reported, restored if session.world_rank == 0 else None)
            return

    trial.model.train()
    meter = _Throughput()
    for indices in _batches_from(trial.step, trial.plan, hp, data, job.train.group_by_length):
        meter.add(*trial.train_step(indices))
        if trial.step in trial.plan.eval_steps:
            trial.evaluate_and_report(meter)
            meter.reset()
