"""The Ray Serve deployment: a FastAPI ingress (`/predict`, `/explain`, `/info`, `/healthz`,
the playground at `/`) in front of one `TextClassifier` per replica. Single texts from
concurrent requests share forward passes through `@serve.batch`.

No `from __future__ import annotations` here: FastAPI reads the handlers' annotations (body
models, `Request`) at runtime, through Serve's ingress wrapper."""

import asyncio
import hmac
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from ray import serve

from hpo.serve.config import ServeConfig
from hpo.serve.model import Prediction, TextClassifier
from hpo.serve.schemas import (
    ErrorBody,
    ExplainRequest,
    ExplainResponse,
    PredictRequest,
    PredictResponse,
)

PLAYGROUND = Path(__file__).with_name("playground.html")

api = FastAPI(
    title="hpo model service",
    description="The best model of an hpo sweep. Send the API key as `Authorization: Bearer "
    "KEY` or `X-API-Key: KEY` to /predict, /explain and /info.",
    responses={401: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message})


@api.exception_handler(RequestValidationError)
async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    """One readable line per problem, instead of FastAPI's nested detail."""
    problems = []
    for problem in error.errors():
        if problem["type"] == "json_invalid":
            return _error(400, "the body is not valid JSON")
        where = ".".join(str(p) for p in problem["loc"] if p != "body") or "body"
        message = problem["msg"].removeprefix("Value error, ")
        problems.append(message if where == "body" else f"{where}: {message}")
    return _error(422, "; ".join(problems))


@api.exception_handler(HTTPException)
async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    return _error(error.status_code, str(error.detail))


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


def _prediction_body(prediction: Prediction) -> dict[str, Any]:
    return asdict(prediction)


def _warnings(predictions: list[Prediction], max_length: int) -> list[str]:
    return [
        f"input {i} is longer than {max_length} tokens and was truncated"
        for i, p in enumerate(predictions)
        if p.truncated
    ]


@serve.deployment
@serve.ingress(api)
class ModelService:
    """One replica: the model, the key, and the deployment's limits."""

    def __init__(
        self, checkpoint: str, info: dict[str, Any], api_key: str, settings: ServeConfig
    ) -> None:
        self.classifier = TextClassifier(checkpoint, threads=max(1, int(settings.cpus_per_replica)))
        self.info = info
        self.api_key = api_key.encode()
        self.settings = settings
        self.stats = BatchStats()
        self._predict_batch.set_max_batch_size(settings.max_batch_size)
        self._predict_batch.set_batch_wait_timeout_s(settings.batch_wait_timeout_s)

    def _authorize(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        key = (
            header[7:]
            if header.lower().startswith("bearer ")
            else request.headers.get("x-api-key", "")
        )
        if not hmac.compare_digest(key.encode(), self.api_key):
            raise HTTPException(401, "missing or wrong API key (Authorization: Bearer KEY)")

    def _check_sizes(self, inputs: list[tuple[str, str | None]]) -> None:
        if len(inputs) > self.settings.max_inputs_per_request:
            raise HTTPException(
                422,
                f"{len(inputs)} inputs in one request; send at most "
                f"{self.settings.max_inputs_per_request}",
            )
        limit = self.settings.max_text_chars
        for i, (text, pair) in enumerate(inputs):
            if len(text) + len(pair or "") > limit:
                raise HTTPException(422, f"input {i} is longer than {limit} characters")

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
    async def _predict_batch(self, inputs: list[tuple[str, str | None]]) -> list[Prediction]:
        self.stats.record(len(inputs))
        return self.classifier.predict([t for t, _ in inputs], [p for _, p in inputs])

    @api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def playground(self) -> HTMLResponse:
        return HTMLResponse(PLAYGROUND.read_text())

    @api.get("/info")
    async def model_info(self, request: Request) -> dict[str, Any]:
        self._authorize(request)
        return {
            **self.info,
            "labels": self.classifier.labels,
            "max_length": self.classifier.max_length,
            "batching": self.stats.as_dict(),
            "limits": {
                "max_inputs_per_request": self.settings.max_inputs_per_request,
                "max_batch_size": self.settings.max_batch_size,
                "batch_wait_timeout_s": self.settings.batch_wait_timeout_s,
                "max_text_chars": self.settings.max_text_chars,
            },
        }

    @api.post("/predict", response_model=PredictResponse)
    async def predict(self, body: PredictRequest, request: Request) -> dict[str, Any]:
        self._authorize(request)
        inputs = body.inputs()
        self._check_sizes(inputs)
        try:
            predictions = await asyncio.gather(*(self._predict_batch(i) for i in inputs))
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
        return {
            "predictions": [_prediction_body(p) for p in predictions],
            "warnings": _warnings(predictions, self.classifier.max_length),
        }

    @api.post("/explain", response_model=ExplainResponse)
    async def explain(self, body: ExplainRequest, request: Request) -> dict[str, Any]:
        self._authorize(request)
        self._check_sizes([(body.text, body.text_pair)])
        explanation = self.classifier.explain(
            body.text, body.text_pair, steps=self.settings.explain_steps
        )
        return {
            **_prediction_body(explanation.prediction),
            "tokens": [asdict(t) for t in explanation.tokens],
            "method": explanation.method,
            "convergence_delta": explanation.convergence_delta,
            "warnings": _warnings([explanation.prediction], self.classifier.max_length),
        }


def build_app(checkpoint: str, info: dict[str, Any], api_key: str, settings: ServeConfig):
    """The Serve application for one checkpoint, with the deployment's replicas and resources."""
    return ModelService.options(
        num_replicas=settings.replicas,
        ray_actor_options={
            "num_cpus": settings.cpus_per_replica,
            "num_gpus": settings.gpus_per_replica,
        },
        max_ongoing_requests=max(64, 2 * settings.max_batch_size),
    ).bind(checkpoint, info, api_key, settings)
