"""The Ray Serve deployment: one `TextClassifier` per replica behind the HTTP API of
`hpo.serve.http`, which each replica builds from its own settings once it has started.

Single texts from concurrent requests share forward passes through `@serve.batch`. The forward
passes run off the event loop on one thread (`hpo.serve.threads` says why one), and the
integrated gradients of /explain each on a thread of their own, on their own copies of the
model behind a small concurrency limit, so that /predict never waits on them."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, HTTPException
from ray import serve
from ray.serve.config import BackpressureConfig

from hpo.serve import ingress
from hpo.serve.config import ServeConfig
from hpo.serve.http import create_api
from hpo.serve.keys import check_key
from hpo.serve.limits import Busy, Slots
from hpo.serve.model import Prediction, TextClassifier
from hpo.serve.schemas import ExplainRequest, PredictRequest
from hpo.serve.threads import TorchThread, run_in_own_thread

RETRY_AFTER_S = 1
"""What a 503 (a full queue, too many explanations) asks clients to wait."""
EXPLAIN_WAITING = 4
"""Explanations that may wait, per slot of `serve.explain_concurrency`; more get 503."""


class BatchStats:
    """What `@serve.batch` made of the traffic: how many forward passes, of how many texts."""

    def __init__(self) -> None:
        self.batches = 0
        self.texts = 0
        self.largest = 0

    def record(self, size: int) -> None:
        self.batches += 1
        self.texts += size
        self.largest = max(self.largest, size)

    def as_dict(self) -> dict[str, float]:
        mean = self.texts / self.batches if self.batches else 0.0
        return {
            "batches": self.batches,
            "texts": self.texts,
            "largest": self.largest,
            "mean_size": round(mean, 2),
        }


def _warnings(predictions: list[Prediction], max_length: int) -> list[str]:
    return [
        f"input {i} is longer than {max_length} tokens and was truncated"
        for i, p in enumerate(predictions)
        if p.truncated
    ]


@serve.deployment
@serve.ingress()
class ModelService:
    """One replica: the model, its explainers, and the deployment's limits."""

    def __init__(
        self, checkpoint: str, info: dict[str, Any], api_key: str, settings: ServeConfig
    ) -> None:
        check_key(api_key, "the service")  # an empty key would let every request through
        self.torch_thread = TorchThread("hpo-model")
        self.classifier = self.torch_thread.call(
            TextClassifier, checkpoint, threads=settings.replica_threads, runtime=settings.runtime
        )
        self.model_info = info
        self.api_key = api_key
        self.settings = settings
        self.stats = BatchStats()
        concurrency = settings.explain_concurrency
        self.explain_slots = Slots(concurrency, EXPLAIN_WAITING * concurrency)
        # one copy of the model per slot: explanations run in threads beside predictions
        self.idle_explainers = [
            self.torch_thread.call(self.classifier.twin) for _ in range(concurrency)
        ]
        self._predict_batch.set_max_batch_size(settings.max_batch_size)
        self._predict_batch.set_batch_wait_timeout_s(settings.batch_wait_timeout_s)

    def __serve_build_asgi_app__(self) -> FastAPI:
        """Serve builds each replica's HTTP API here, after the constructor."""
        return create_api(self, self.settings, self.api_key)

    def _check_sizes(self, inputs: list[tuple[str, str | None]]) -> None:
        if len(inputs) > self.settings.max_inputs_per_request:
            raise HTTPException(
                422,
                f"{len(inputs)} inputs in one request; send at most "
                f"{self.settings.max_inputs_per_request}",
            )
        limit = self.settings.max_text_chars
        for i, (text, pair) in enumerate(inputs):
            if max(len(text), len(pair or "")) > limit:
                raise HTTPException(422, f"input {i} has a text longer than {limit} characters")

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
    async def _predict_batch(self, inputs: list[tuple[str, str | None]]) -> list[Prediction]:
        self.stats.record(len(inputs))
        # Waiting for more texts pays only when requests overlap: after a batch of one (a lone
        # client) the next forward pass starts at once, after a fuller one it waits again.
        self._predict_batch.set_batch_wait_timeout_s(
            self.settings.batch_wait_timeout_s if len(inputs) > 1 else 0.0
        )
        texts, pairs = [t for t, _ in inputs], [p for _, p in inputs]
        return await self.torch_thread.run(self.classifier.predict, texts, pairs)

    def info(self) -> dict[str, Any]:
        return {
            **self.model_info,
            "labels": self.classifier.labels,
            "max_length": self.classifier.max_length,
            "runtime": self.settings.runtime,
            "linear_layers": self.classifier.linear_kernels,
            "ingress": ingress.in_use(),
            "batching": self.stats.as_dict(),
            "limits": {
                "max_inputs_per_request": self.settings.max_inputs_per_request,
                "max_batch_size": self.settings.max_batch_size,
                "batch_wait_timeout_s": self.settings.batch_wait_timeout_s,
                "max_text_chars": self.settings.max_text_chars,
                "max_request_bytes": self.settings.max_request_bytes,
                "explain_concurrency": self.settings.explain_concurrency,
            },
        }

    async def predict(self, body: PredictRequest) -> dict[str, Any]:
        inputs = body.inputs()
        self._check_sizes(inputs)
        try:
            predictions = await asyncio.gather(*(self._predict_batch(i) for i in inputs))
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
        return {
            "predictions": [asdict(p) for p in predictions],
            "warnings": _warnings(predictions, self.classifier.max_length),
        }

    async def explain(self, body: ExplainRequest) -> dict[str, Any]:
        self._check_sizes([(body.text, body.text_pair)])
        try:
            async with self.explain_slots.take():
                explainer = self.idle_explainers.pop()  # a slot is held: one is idle
                try:
                    explanation = await run_in_own_thread(
                        explainer.explain,
                        body.text,
                        body.text_pair,
                        steps=self.settings.explain_steps,
                    )
                finally:
                    self.idle_explainers.append(explainer)
        except Busy:
            raise HTTPException(
                503,
                "too many explanations at once; retry shortly",
                {"Retry-After": str(RETRY_AFTER_S)},
            ) from None
        return {
            **asdict(explanation.prediction),
            "tokens": [asdict(t) for t in explanation.tokens],
            "method": explanation.method,
            "convergence_delta": explanation.convergence_delta,
            "warnings": _warnings([explanation.prediction], self.classifier.max_length),
        }


def build_app(checkpoint: str, info: dict[str, Any], api_key: str, settings: ServeConfig) -> Any:
    """The Serve application for one checkpoint, with the deployment's replicas and resources."""
    check_key(api_key, "the service")  # refused here already, not only by each replica
    return ModelService.options(
        num_replicas=settings.replicas,
        ray_actor_options={
            "num_cpus": settings.cpus_per_replica,
            "num_gpus": settings.gpus_per_replica,
        },
        max_ongoing_requests=max(64, 2 * settings.max_batch_size),
        # a full queue (a replica restarting after a crash, overload): retryable 503s
        max_queued_requests=settings.max_queued_requests,
        backpressure_config=BackpressureConfig(status_code=503, retry_after_s=RETRY_AFTER_S),
    ).bind(checkpoint, info, api_key, settings)
