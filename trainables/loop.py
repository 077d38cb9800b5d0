"""The per-worker fine-tuning loop, read top to bottom: build the model, restore if resuming,
train in length-grouped batches, evaluate and report (with a checkpoint) at fixed fractions of
an epoch. Ray appears only behind `TrialSession`."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from trainables.config import Hyperparameters
from trainables.encoding import EncodedData, EncodedSplit, collate, epoch_batches
from trainables.job import TrainJob
from trainables.metrics import compute_metrics
from trainables.sessions import TrialSession

TRAINING_STATE = "training_state.pt"


@dataclass(frozen=True)
class StepPlan:
    """Optimizer steps of a trial and the steps after which it evaluates."""

    num_examples: int
    batch_size: int
    total_steps: int
    steps_per_epoch: int
    eval_steps: frozenset[int]

    @classmethod
    def make(cls, num_examples: int, batch_size: int, job: TrainJob) -> "StepPlan":
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


def _amp_dtype(device: torch.device, amp: bool | str) -> torch.dtype | None:
    """bf16 where the GPU has it, else fp16 (with a gradient scaler); None for no autocast.
    Decided once per trial: `torch.cuda.is_bf16_supported()` is too slow to ask every step."""
    if device.type != "cuda" or amp is False:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _load_model(source: str, data: EncodedData, hp: Hyperparameters, *, new_head: bool):
    """The model with a classifier for our labels. A base model's own head (another task's
    labels, or none) is replaced by a fresh one of the right size (`new_head`)."""
    from transformers import AutoModelForSequenceClassification

    dropout = {}
    if hp.dropout is not None:
        dropout = {"hidden_dropout_prob": hp.dropout, "attention_probs_dropout_prob": hp.dropout}
    return AutoModelForSequenceClassification.from_pretrained(
        source,
        num_labels=len(data.labels.names),
        id2label=data.labels.id2label,
        label2id=data.labels.label2id,
        ignore_mismatched_sizes=new_head,
        **dropout,
    )


def _optimizer(model: torch.nn.Module, hp: Hyperparameters) -> torch.optim.Optimizer:
    """AdamW without weight decay on biases and LayerNorm weights, as BERT was trained.

    The fused implementation matters on CPU: for MiniLM it cuts the optimizer step from ~0.12 s
    to ~0.02 s, about half of a whole training step on 16 short sentences.
    """
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": hp.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=hp.learning_rate, fused=True)


def _lr_scheduler(optimizer: torch.optim.Optimizer, hp: Hyperparameters, plan: StepPlan):
    from transformers import get_scheduler

    name = {"constant": "constant_with_warmup"}.get(hp.lr_schedule, hp.lr_schedule)
    return get_scheduler(
        name,
        optimizer,
        num_warmup_steps=round(hp.warmup_ratio * plan.total_steps),
        num_training_steps=plan.total_steps,
    )


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    split: EncodedSplit,
    *,
    pad_token_id: int,
    pad_multiple: int,
    batch_size: int,
    session: TrialSession,
    amp: torch.dtype | None,
) -> dict[str, float]:
    """Metrics on a split; each rank scores a share, sorted by length to pad little."""
    was_training = model.training
    model.eval()
    mine = np.argsort(split.lengths, kind="stable")[session.world_rank :: session.world_size]
    logits = []
    for start in range(0, len(mine), batch_size):
        indices = mine[start : start + batch_size]
        batch = _to_device(collate(split, indices, pad_token_id, pad_multiple), session.device)
        batch.pop("labels")
        with _autocast(session.device, amp):
            logits.append(model(**batch).logits.float().cpu().numpy())
    shares = [(mine, np.concatenate(logits) if logits else np.zeros((0, 0)))]
    if session.world_size > 1:
        shares = [None] * session.world_size
        dist.all_gather_object(shares, (mine, np.concatenate(logits)))
    order = np.concatenate([indices for indices, _ in shares])
    all_logits = np.concatenate([values for _, values in shares])
    model.train(was_training)
    return compute_metrics(all_logits[np.argsort(order)], split.labels)


def _save_checkpoint(
    folder: str, model, tokenizer, optimizer, scheduler, step: int, metrics: dict[str, float]
) -> None:
    """A `save_pretrained` folder (pipeline-ready) plus what resuming needs, and the metrics
    reported with it."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "torch_rng": torch.get_rng_state(),
            "metrics": metrics,
        },
        os.path.join(folder, TRAINING_STATE),
    )


def _restore_training_state(folder: str, optimizer, scheduler) -> tuple[int, dict[str, float]]:
    """The step to go on from, and the metrics reported with the checkpoint."""
    state = torch.load(os.path.join(folder, TRAINING_STATE), weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"]), state.get("metrics", {})


def _mean_across_ranks(total: float, count: int, session: TrialSession) -> float:
    if session.world_size > 1:
        sums = torch.tensor([total, float(count)], dtype=torch.float64)
        dist.all_reduce(sums)
        total, count = sums.tolist()
    return total / max(count, 1)


def _batches_from(step: int, plan: StepPlan, hp: Hyperparameters, data: EncodedData,
                  group_by_length: bool) -> Iterator[np.ndarray]:
    """The global batches still to train on after `step` steps, across epochs; each epoch's
    order depends only on the seed and the epoch, so a resumed trial sees the same batches."""
    while step < plan.total_steps:
        epoch = step // plan.steps_per_epoch
        batches = epoch_batches(
            data.train.lengths, hp.batch_size, seed=hp.seed * 100_003 + epoch,
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
        self.loss_sum, self.count, self.started = 0.0, 0, time.perf_counter()

    def add(self, loss: float, size: int) -> None:
        self.loss_sum += loss * size
        self.count += size

    def summary(self, session: TrialSession, batch_size: int, steps: int) -> dict[str, float]:
        seconds = time.perf_counter() - self.started
        return {
            "train_loss": _mean_across_ranks(self.loss_sum, self.count, session),
            "train_samples_per_s": steps * batch_size / seconds,
        }


def train_model(
    hp: Hyperparameters, job: TrainJob, data: EncodedData, session: TrialSession
) -> None:
    """Fine-tunes one model with one set of hyperparameters, reporting after each evaluation."""
    import transformers
    from transformers import AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(job.threads)
    device = session.device
    amp = _amp_dtype(device, job.train.amp)
    pad_multiple = job.train.pad_to_multiple_of
    if pad_multiple == "auto":
        pad_multiple = 8 if device.type == "cuda" else 1

    restored = session.restored_checkpoint()
    torch.manual_seed(hp.seed)  # the new classifier head starts the same in every trial
    model = _load_model(restored or job.model_source, data, hp, new_head=restored is None)
    model.to(device)
    tokenizer = AutoTokenizer.from_pretrained(job.model_source)
    wrapped = model
    if session.world_size > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    plan = StepPlan.make(len(data.train), hp.batch_size, job)
    optimizer = _optimizer(model, hp)
    scheduler = _lr_scheduler(optimizer, hp, plan)
    step, reported = 0, {}
    if restored is not None:
        step, reported = _restore_training_state(restored, optimizer, scheduler)
    if step >= plan.total_steps and reported and session.checkpoints_ahead_of_tune:
        # Ray Train saved the final checkpoint of a trial that was interrupted before Tune
        # received its last report: report it again, or the trial would end without it.
        session.report(reported, restored if session.world_rank == 0 else None)
        return
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)

    model.train()
    meter, steps_since_report = _Throughput(), 0
    for indices in _batches_from(step, plan, hp, data, job.train.group_by_length):
        mine = indices[session.world_rank :: session.world_size]
        batch = _to_device(collate(data.train, mine, data.pad_token_id, pad_multiple), device)
        labels = batch.pop("labels")
        with _autocast(device, amp):
            logits = wrapped(**batch).logits
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=hp.label_smoothing)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), hp.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        steps_since_report += 1
        meter.add(loss.item(), len(labels))
        if step not in plan.eval_steps:
            continue

        metrics = evaluate(
            model, data.validation, pad_token_id=data.pad_token_id, pad_multiple=pad_multiple,
            batch_size=job.train.eval_batch_size, session=session, amp=amp,
        )
        metrics.update(
            meter.summary(session, hp.batch_size, steps_since_report),
            epoch=plan.epoch(step),
            step=step,
            samples=plan.samples(step),
            learning_rate=scheduler.get_last_lr()[0],
        )
        if session.world_rank == 0:
            with tempfile.TemporaryDirectory(prefix="hpo-checkpoint-") as folder:
                _save_checkpoint(folder, model, tokenizer, optimizer, scheduler, step, metrics)
                session.report(metrics, folder)
        else:
            session.report(metrics, None)
        meter.reset()
        steps_since_report = 0
