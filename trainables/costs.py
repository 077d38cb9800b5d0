"""What a trained model costs to serve: the objectives a sweep may minimise next to its metric
(`metric: [accuracy, latency_ms]`).

    latency_ms   median time of one text's forward pass, run the way the service runs it
                 (its thread count and runtime, on CPU, in inference mode)
    params       parameters of the served model (a lora trial's merged weights)
    size_mb      megabytes of its weights on disk

They depend on the model's shape, not on its weights, so a trial measures them once, at its
first evaluation, and reports them with every evaluation. Validation examples, tokenized the
way the service tokenizes them, are what the forward passes run on; tokenization itself (the
same for every trial) is left out. `latency_batch_ms` (a full serve batch) is reported too.
"""

from __future__ import annotations

import copy
import statistics
import time
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from hpo.trainables.encoding import EncodedSplit, collate


@dataclass(frozen=True)
class ServingProbe:
    """How the service will run the model: measured that way in each trial.

    Attributes:
        threads: torch threads of a replica (`serve.cpus_per_replica`).
        batch_size: texts in one batched forward pass (`serve.max_batch_size`).
        runtime: torch or int8 (`serve.runtime`).
        repeats: single-text passes timed; their median is `latency_ms`.
    """

    threads: int = 1
    batch_size: int = 32
    runtime: Literal["torch", "int8"] = "torch"
    repeats: int = 30


def quantized_int8(model: torch.nn.Module) -> torch.nn.Module:
    """The model with its linear layers quantized to int8 (weights ahead, activations per
    batch): PyTorch's dynamic quantization, which runs on CPUs only (`serve.runtime: int8`)."""
    with warnings.catch_warnings():  # torch points eager-mode quantization users to torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def weights_size(model: torch.nn.Module) -> tuple[int, float]:
    """Parameters and megabytes of the weights a checkpoint of `model` holds."""
    tensors = list(model.state_dict().values())
    params = sum(t.numel() for t in model.parameters())
    return params, sum(t.numel() * t.element_size() for t in tensors) / 1e6


def _median_ms(model: torch.nn.Module, batches: list[dict[str, torch.Tensor]]) -> float:
    times = []
    with torch.inference_mode():
        model(**batches[0])  # warm-up: the first pass allocates
        for batch in batches:
            started = time.perf_counter()
            torch.softmax(model(**batch).logits, dim=-1)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def serving_costs(
    model: torch.nn.Module, examples: EncodedSplit, pad_token_id: int, probe: ServingProbe
) -> dict[str, float]:
    """`latency_ms`, `latency_batch_ms`, `params` and `size_mb` of a (merged) model, measured
    on a CPU copy of it with the service's threads and runtime."""
    served = copy.deepcopy(model).to("cpu").eval()
    params, size_mb = weights_size(served)
    if probe.runtime == "int8":
        served = quantized_int8(served)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(examples), size=min(probe.repeats, len(examples)), replace=False)
    singles = [collate(examples, picks[i : i + 1], pad_token_id, 1) for i in range(len(picks))]
    full = rng.choice(len(examples), size=min(probe.batch_size, len(examples)), replace=False)
    batched = [collate(examples, full, pad_token_id, 1) for _ in range(5)]
    for batch in [*singles, *batched]:
        del batch["labels"]
    threads = torch.get_num_threads()
    torch.set_num_threads(probe.threads)
    try:
        latency = _median_ms(served, singles)
        latency_batch = _median_ms(served, batched)
    finally:
        torch.set_num_threads(threads)
    return {
        "latency_ms": round(latency, 3),
        "latency_batch_ms": round(latency_batch, 3),
        "params": params,
        "size_mb": round(size_mb, 3),
    }
