"""What a trained model costs to serve: the objectives a sweep may minimise next to its metric
(`metric: [accuracy, latency_ms]`).

    latency_ms   median time of one text's forward pass, run the way the service runs it
                 (its thread count and runtime, on CPU, in inference mode)
    params       parameters of the served model (a lora trial's merged weights)
    size_mb      megabytes of its weights on disk

They depend on the model's shape, not on its weights, so a trial measures them once, at its
first evaluation, and reports them with every evaluation. Validation texts (decoded from their
tokens) go through what a service replica does with a request: tokenizing, a forward pass, a
softmax. `latency_batch_ms` (a full serve batch) is reported too.
"""

from __future__ import annotations

import copy
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from hpo.trainables.encoding import EncodedSplit
from hpo.trainables.job import ServingProbe
from hpo.trainables.packed import PackedLinear, packed_linears

Batch = TypeVar("Batch")


def quantized_int8(model: torch.nn.Module) -> torch.nn.Module:
    """The model with its linear layers quantized to int8 (weights ahead, activations per
    batch): PyTorch's dynamic quantization, which runs on CPUs only (`serve.runtime: int8`)."""
    with warnings.catch_warnings():  # torch points eager-mode quantization users to torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def as_served(model: torch.nn.Module, runtime: str) -> torch.nn.Module:
    """The model (in eval mode) as a service runs it under `serve.runtime`: int8 quantized, or
    for torch its linear layers packed for oneDNN on a CPU (`hpo.trainables.packed`)."""
    if runtime == "int8":
        return quantized_int8(model)
    return packed_linears(model)


def linear_kernels(model: torch.nn.Module) -> str:
    """What runs a served model's linear layers, for /info: "onednn_packed", "int8_dynamic" or
    "torch" (eager: on a GPU, or where `as_served` could not pack)."""
    kinds = {type(module) for module in model.modules()}
    if PackedLinear in kinds:
        return "onednn_packed"
    if torch.ao.nn.quantized.dynamic.Linear in kinds:
        return "int8_dynamic"
    return "torch"


def weights_size(model: torch.nn.Module) -> tuple[int, float]:
    """Parameters and megabytes of the weights a checkpoint of `model` holds."""
    tensors = list(model.state_dict().values())
    params = sum(t.numel() for t in model.parameters())
    return params, sum(t.numel() * t.element_size() for t in tensors) / 1e6


def median_ms(predict: Callable[[Batch], object], batches: list[Batch], rounds: int = 3) -> float:
    """The median time of `predict` over the batches, after one warm-up pass; the lowest of
    `rounds` such medians, since other trials training beside this one only ever add time.
    The promotion gate times a served checkpoint with it too (one round)."""
    medians = []
    with torch.inference_mode():
        predict(batches[0])  # warm-up: the first pass allocates
        for _ in range(rounds):
            times = []
            for batch in batches:
                started = time.perf_counter()
                predict(batch)
                times.append((time.perf_counter() - started) * 1000)
            medians.append(statistics.median(times))
    return min(medians)


def serving_costs(
    model: torch.nn.Module, tokenizer: Any, examples: EncodedSplit, probe: ServingProbe
) -> dict[str, float]:
    """`latency_ms`, `latency_batch_ms`, `params` and `size_mb` of a (merged) model, measured
    on a CPU copy of it with the service's threads and runtime: texts tokenized (padded to
    the batch's longest, truncated at the model's limit), a forward pass, a softmax."""
    served = copy.deepcopy(model).to("cpu").eval()
    params, size_mb = weights_size(served)
    served = as_served(served, probe.runtime)
    limit = min(tokenizer.model_max_length, served.config.max_position_embeddings)

    def predict(texts: list[str]) -> torch.Tensor:
        encoded = tokenizer(
            texts, truncation=True, max_length=limit, padding=True, return_tensors="pt"
        )
        return served(**encoded).logits.float().softmax(-1)

    rng = np.random.default_rng(0)
    picks = rng.choice(len(examples), size=min(probe.repeats, len(examples)), replace=False)
    full = rng.choice(len(examples), size=min(probe.batch_size, len(examples)), replace=False)
    text = [tokenizer.decode(ids, skip_special_tokens=True) for ids in examples.input_ids]
    threads = torch.get_num_threads()
    torch.set_num_threads(probe.threads)
    try:
        latency = median_ms(predict, [[text[i]] for i in picks])
        latency_batch = median_ms(predict, [[text[i] for i in full]] * 3)
    finally:
        torch.set_num_threads(threads)
    return {
        "latency_ms": round(latency, 3),
        "latency_batch_ms": round(latency_batch, 3),
        "params": params,
        "size_mb": round(size_mb, 3),
    }
