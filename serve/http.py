"""The service's HTTP API, built per replica from its settings: `/predict`, `/explain`, `/info`,
`/healthz`, the playground at `/` and the API docs at `/docs`.

Every request first passes `RequestGuard` (key, content type, body size) before its body is
read. The published schema carries the deployment's limits, so that it says exactly what the
service accepts; every error is JSON with an `error` message.

No `from __future__ import annotations` here: FastAPI reads the handlers' annotations (body
models) at runtime."""

from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from hpo.serve import pages
from hpo.serve.config import ServeConfig
from hpo.serve.guard import Guard, RequestGuard
from hpo.serve.schemas import (
    ErrorBody,
    ExplainRequest,
    ExplainResponse,
    PredictRequest,
    PredictResponse,
)

TITLE = "hpo model service"
ERRORS = {
    400: "invalid JSON",
    401: "missing or wrong key",
    413: "body too large",
    415: "not JSON",
    422: "invalid input",
    503: "busy or restarting: retry after Retry-After seconds",
}


class Service(Protocol):
    """What the API calls: the deployment (hpo.serve.app.ModelService)."""

    async def predict(self, body: PredictRequest) -> dict[str, Any]: ...

    async def explain(self, body: ExplainRequest) -> dict[str, Any]: ...

    def info(self) -> dict[str, Any]: ...


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message}, headers=headers)


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


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    return _error(error.status_code, str(error.detail), error.headers)


async def _failure(request: Request, error: Exception) -> JSONResponse:
    """A bug, not the client's fault: still a JSON error, whose cause is in the replica's log."""
    return _error(500, f"internal error ({type(error).__name__}); see the service's logs")


def _with_limits(schema: dict[str, Any], settings: ServeConfig) -> dict[str, Any]:
    """The OpenAPI schema with the deployment's limits: inputs per request, characters per
    text."""
    bodies = schema["components"]["schemas"]
    for model in ("PredictRequest", "ExplainRequest"):
        for name, field in bodies[model]["properties"].items():
            if name in ("text", "text_pair"):
                field["maxLength"] = settings.max_text_chars
    predict = bodies["PredictRequest"]["properties"]
    predict["texts"]["maxItems"] = settings.max_inputs_per_request
    predict["texts"]["items"]["maxLength"] = settings.max_text_chars
    predict["pairs"]["maxItems"] = settings.max_inputs_per_request
    predict["pairs"]["items"]["items"]["maxLength"] = settings.max_text_chars
    return schema


def create_api(service: Service, settings: ServeConfig, api_key: str) -> FastAPI:
    """The API of one replica: its routes call `service`."""
    api = FastAPI(
        title=TITLE,
        description="The best model of an hpo sweep. Send the API key as `Authorization: "
        "Bearer KEY` or `X-API-Key: KEY` to /predict, /explain and /info.",
        responses={
            code: {"model": ErrorBody, "description": text} for code, text in ERRORS.items()
        },
        docs_url=None,  # served below, from this service's own copy of Swagger UI
        redoc_url=None,
    )
    api.add_middleware(RequestGuard, guard=Guard(api_key.encode(), settings.max_request_bytes))
    api.add_exception_handler(RequestValidationError, _invalid_request)
    api.add_exception_handler(HTTPException, _http_error)
    api.add_exception_handler(Exception, _failure)

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def playground() -> HTMLResponse:
        return pages.playground()

    @api.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return pages.docs(TITLE)

    @api.get("/docs/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        return pages.docs_asset(name)

    @api.get("/info")
    async def info() -> dict[str, Any]:
        return service.info()

    @api.post("/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> dict[str, Any]:
        return await service.predict(body)

    @api.post("/explain", response_model=ExplainResponse)
    async def explain(body: ExplainRequest) -> dict[str, Any]:
        return await service.explain(body)

    api.openapi_schema = _with_limits(api.openapi(), settings)
    return api
