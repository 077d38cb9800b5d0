"""The sweep-file sections that the trainables read: `data`, `train`, and the hyperparameters
that `space` may search. They live with the training code, which depends on nothing above it;
`hpo.search.sweep` composes them into the whole sweep file."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, field_validator

from hpo.core.config import StrictModel

DataSource = str | list[str | None]
Strategy = Literal["full", "freeze", "bitfit", "lora"]


class DataConfig(StrictModel):
    """Where the examples come from and which columns hold texts and labels."""

    train: DataSource = Field(
        description="csv/tsv/json/jsonl/parquet path, or hub:NAME[:CONFIG][@SPLIT]. "
        "A list is tried in order: the first local file that exists (or the first hub: "
        "source) is used, so a sweep can fall back to the Hub when a local copy is missing."
    )
    validation: DataSource = Field(description="Validation split, same forms as `train`.")
    test: DataSource | None = Field(
        default=None,
        description="Optional held-out split, same forms as `train`; a null in its list leaves "
        "it out when no source before the null exists.",
    )
    text: str = Field(default="text", description="Column with the (first) text.")
    text_pair: str | None = Field(
        default=None, description="Column with the second text of sentence-pair tasks."
    )
    label: str = Field(default="label", description="Column with the labels (ints or strings).")
    label_names: list[str] | None = Field(
        default=None, description="Names of integer labels 0..n-1, shown by pipeline and Serve."
    )
    max_train_samples: int | None = Field(
        default=None, gt=0, description="Train on a seeded random subsample of this size."
    )
    max_eval_samples: int | None = Field(
        default=None, gt=0, description="Evaluate on a seeded random subsample of this size."
    )
    seed: int = Field(default=0, description="Seed of the subsamples.")

    @field_validator("train", "validation", "test")
    @classmethod
    def _not_empty(cls, value: DataSource | None) -> DataSource | None:
        if value is not None and not value:
            raise ValueError("give a path or hub: source (or a non-empty list of them)")
        return value


class TrainConfig(StrictModel):
    """How each trial trains: infrastructure, not hyperparameters."""

    workers: int = Field(default=1, ge=1, description="Ray Train workers (DDP ranks) per trial.")
    use_gpu: bool | Literal["auto"] = Field(
        default="auto", description="Train on GPUs; auto = when the cluster has any."
    )
    cpus_per_worker: PositiveInt | Literal["auto"] = Field(
        default="auto",
        description="CPUs (and torch threads) per worker; auto shares this machine's cores "
        "between concurrent trials (1 on a cluster).",
    )
    resources_per_worker: dict[str, float] = Field(
        default_factory=dict,
        description="Resources each worker holds besides its CPUs and (with use_gpu) one GPU: "
        "{GPU: 2} for a model that needs two, or a custom resource such as "
        "{'accelerator_type:H100': 0.01}.",
    )
    placement_strategy: Literal["pack", "spread"] = Field(
        default="pack",
        description="pack: a trial's workers on as few nodes as possible (fast all-reduce); "
        "spread: on different nodes.",
    )
    launcher: Literal["auto", "in_trial", "ray_train"] = Field(
        default="auto",
        description="in_trial trains inside the Tune trial's own process; ray_train starts a Ray "
        "Train TorchTrainer per trial. auto picks ray_train for workers > 1 or GPUs.",
    )
    max_length: int = Field(default=128, ge=8, description="Tokens per example after truncation.")
    evals_per_epoch: int = Field(
        default=1,
        ge=1,
        description="Evaluations (reports, checkpoints, scheduler decisions) per epoch, at equal "
        "fractions of the epoch whatever the batch size.",
    )
    eval_batch_size: int = Field(default=64, ge=1)
    group_by_length: bool = Field(
        default=True,
        description="Batch examples of similar length together (less padding, faster on CPU).",
    )
    pad_to_multiple_of: PositiveInt | Literal["auto"] = Field(
        default="auto",
        description="Round each batch's length up to a multiple of this: fewer distinct shapes "
        "and tensor-core-friendly sizes on GPUs; auto = 8 on CUDA, 1 (no rounding) on CPU.",
    )
    amp: bool | Literal["auto"] = Field(
        default="auto", description="Mixed precision on CUDA (bf16 where supported, else fp16)."
    )
    strategy: Strategy | None = Field(
        default=None,
        description="Which weights train (full, freeze, bitfit, lora) when `space` does not "
        "search `strategy`; default full.",
    )


class Hyperparameters(StrictModel):
    """Everything `space` may search; what it leaves out takes these defaults."""

    learning_rate: float = Field(default=5e-5, gt=0)
    batch_size: int = Field(
        default=32, ge=1, description="Global batch size (split across DDP workers)."
    )
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_ratio: float = Field(default=0.0, ge=0, le=1)
    lr_schedule: Literal["linear", "cosine", "constant"] = "linear"
    dropout: float | None = Field(
        default=None,
        ge=0,
        lt=1,
        description="Hidden and attention dropout; None keeps the model's.",
    )
    num_layers: int | None = Field(
        default=None,
        ge=1,
        description="Encoder layers kept from the bottom, the rest dropped before training: "
        "a shallower model serves faster (search it with `metric: [accuracy, latency_ms]`); "
        "None keeps them all.",
    )
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    max_grad_norm: float = Field(default=1.0, gt=0)
    seed: int = Field(default=0, description="Seed of the classifier head and the data order.")
    strategy: Strategy = Field(
        default="full",
        description="What trains: full (every weight), freeze (all but the embeddings and the "
        "lowest `freeze_layers` encoder layers), bitfit (biases and the classifier head), lora "
        "(low-rank adapters through peft, and the head). Default: `train.strategy`.",
    )
    freeze_layers: int | None = Field(
        default=None,
        ge=0,
        description="freeze: encoder layers frozen from the bottom; None: half of them.",
    )
    lora_r: int = Field(default=8, ge=1, description="lora: rank of the adapters.")
    lora_alpha: float = Field(default=16.0, gt=0, description="lora: scaling numerator.")
    lora_dropout: float = Field(default=0.1, ge=0, lt=1, description="lora: adapter dropout.")
    lora_targets: str = Field(
        default="query,value",
        pattern=r"^(all-linear|[A-Za-z_][\w.]*(,[A-Za-z_][\w.]*)*)$",
        description="lora: comma-separated names of the linear layers to adapt "
        "(query,value; query,key,value,dense), or all-linear.",
    )


CONDITIONAL = {
    "freeze_layers": "freeze",
    "lora_r": "lora",
    "lora_alpha": "lora",
    "lora_dropout": "lora",
    "lora_targets": "lora",
}
"""Hyperparameters that only mean something under one strategy: searched only for its trials."""
