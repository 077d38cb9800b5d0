"""A small Python client of the model service (also behind `hpo query`).

from hpo.serve.client import ModelClient
client = ModelClient("http://127.0.0.1:8000", api_key="...")
client.predict("a gorgeous, witty film")        # {'label': 'positive', 'score': 0.97, ...}
client.predict_many(["great", "awful"])
client.explain("a gorgeous, witty film")["tokens"]
"""

from __future__ import annotations

import os
from typing import Any

import requests


class ServiceError(RuntimeError):
    """The service answered with an error (its JSON message is the text)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class ModelClient:
    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key or os.environ.get("HPO_API_KEY", "")
        self.timeout = timeout
        self.session = requests.Session()

    def _call(self, method: str, path: str, body: dict | None = None) -> dict[str, Any]:
        response = self.session.request(
            method,
            f"{self.url}{path}",
            json=body,
            timeout=self.timeout,
            headers={"Authorization": f"Bearer {self.api_key}"},
        )
        try:
            answer = response.json()
        except ValueError:
            answer = {"error": response.text}
        if not response.ok:
            raise ServiceError(response.status_code, answer.get("error", response.reason))
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
