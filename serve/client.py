"""A small Python client of the model service (also behind `hpo query`).

    from hpo.serve.client import ModelClient
    client = ModelClient("http://127.0.0.1:8000", api_key="...")
    client.predict("a gorgeous, witty film")        # {'label': 'positive', 'score': 0.97, ...}
    client.predict_many(["great", "awful"])
    client.explain("a gorgeous, witty film")["tokens"]

Every call is idempotent (a prediction changes nothing on the server), so a call that cannot
connect, is cut off midway, or gets 502/503/504 (a replica restarting, an overloaded explainer),
is retried with exponential backoff, waiting at least what the service's Retry-After asks. So
is a 500 that is not the service's own JSON error: Ray Serve's proxy answers a request whose
replica died mid-request with a plain 500 (behind HAProxy its connection just closes).
"""

from __future__ import annotations

import os
import time
from typing import Any

import requests
from requests.exceptions import ChunkedEncodingError

RETRYABLE = frozenset({502, 503, 504})
MAX_BACKOFF_S = 8.0
"""The longest wait between two tries: by default 8 retries span ~40 s, longer than a replica
takes to restart on a busy 2-core machine."""


def _proxy_failure(response: requests.Response) -> bool:
    """A 500 from the proxy (the replica died), not from the service, which answers JSON."""
    return response.status_code == 500 and "json" not in response.headers.get("content-type", "")


class ServiceError(RuntimeError):
    """The service answered with an error (its JSON message is the text)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class ModelClient:
    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 8,
        backoff_s: float = 0.5,
    ) -> None:
        self.url = url.rstrip("/")
        self.api_key = (api_key or os.environ.get("HPO_API_KEY", "")).strip()
        self.timeout = timeout
        self.retries = retries
        self.backoff_s = backoff_s
        self.session = requests.Session()

    def _wait(self, attempt: int, response: requests.Response | None) -> None:
        delay = min(self.backoff_s * 2**attempt, MAX_BACKOFF_S)
        retry_after = response.headers.get("retry-after", "") if response is not None else ""
        if retry_after.isdigit():
            delay = max(delay, float(retry_after))
        time.sleep(delay)

    def _call(self, method: str, path: str, body: dict | None = None) -> dict[str, Any]:
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.session.request(
                    method,
                    f"{self.url}{path}",
                    json=body,
                    timeout=self.timeout,
                    headers={"Authorization": f"Bearer {self.api_key}"},
                )
            # ChunkedEncodingError: the answer was cut off, e.g. its replica died mid-response
            except (requests.ConnectionError, requests.Timeout, ChunkedEncodingError):
                if last:
                    raise
                self._wait(attempt, None)
                continue
            if (response.status_code in RETRYABLE or _proxy_failure(response)) and not last:
                self._wait(attempt, response)
                continue
            break
        try:
            answer = response.json()
        except ValueError:
            answer = {"error": response.text or response.reason}
        if not response.ok:
            message = answer.get("error") if isinstance(answer, dict) else None
            raise ServiceError(response.status_code, message or response.reason)
        return answer

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/healthz")

    def info(self) -> dict[str, Any]:
        return self._call("GET", "/info")

    def predict(self, text: str, pair: str | None = None) -> dict[str, Any]:
        body = {"text": text} if pair is None else {"text": text, "text_pair": pair}
        answer = self._call("POST", "/predict", body)
        return {**answer["predictions"][0], "warnings": answer["warnings"]}

    def predict_many(self, texts: list[str]) -> list[dict[str, Any]]:
        return self._call("POST", "/predict", {"texts": texts})["predictions"]

    def predict_pairs(self, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
        return self._call("POST", "/predict", {"pairs": [list(p) for p in pairs]})["predictions"]

    def explain(self, text: str, pair: str | None = None) -> dict[str, Any]:
        body = {"text": text} if pair is None else {"text": text, "text_pair": pair}
        return self._call("POST", "/explain", body)
