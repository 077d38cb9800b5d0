"""The model client retries what is safe to retry (connection errors, 502/503/504), waiting at
least what Retry-After asks, and raises the service's JSON error otherwise."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hpo.serve.client import ModelClient, ServiceError


class Scripted(BaseHTTPRequestHandler):
    """Answers with the next (status, headers, body) of the server's script."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        status, headers, body = self.server.script.pop(0)
        self.server.times.append(time.monotonic())
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def scripted():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.script, server.times = [], []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


PREDICTED = json.dumps({"predictions": [{"label": "positive", "score": 0.9}], "warnings": []})


def test_a_restarting_replica_is_retried_with_backoff(scripted) -> None:
    scripted.script = [
        (503, {"Retry-After": "1"}, '{"error": "restarting"}'),
        (502, {}, "<html>bad gateway</html>"),
        (200, {"Content-Type": "application/json"}, PREDICTED),
    ]
    client = ModelClient(f"http://127.0.0.1:{scripted.server_port}", "k" * 40, backoff_s=0.05)
    assert client.predict("fine")["label"] == "positive"
    assert len(scripted.times) == 3
    assert scripted.times[1] - scripted.times[0] >= 1.0  # Retry-After, not the 0.05 s backoff


def test_an_answer_cut_off_midway_is_retried(scripted) -> None:
    """A replica that dies after its headers: behind HAProxy the body just ends."""
    scripted.script = [
        (200, {"Content-Type": "application/json", "Content-Length": "175"}, ""),
        (200, {"Content-Type": "application/json"}, PREDICTED),
    ]
    client = ModelClient(f"http://127.0.0.1:{scripted.server_port}", "k" * 40, backoff_s=0.01)
    assert client.predict("fine")["label"] == "positive"
    assert len(scripted.times) == 2


def test_client_errors_are_not_retried(scripted) -> None:
    scripted.script = [(422, {}, '{"error": "text: Input should be a valid string"}')]
    client = ModelClient(f"http://127.0.0.1:{scripted.server_port}", "k" * 40)
    with pytest.raises(ServiceError, match="422: text: Input should be"):
        client.predict("x")
    assert len(scripted.times) == 1


def test_retries_end_with_the_last_answer(scripted) -> None:
    scripted.script = [(503, {}, "{}")] * 3
    client = ModelClient(
        f"http://127.0.0.1:{scripted.server_port}", "k" * 40, retries=2, backoff_s=0.01
    )
    with pytest.raises(ServiceError, match="503"):
        client.predict("x")
    assert len(scripted.times) == 3


def test_a_service_that_is_gone_raises_after_retrying() -> None:
    client = ModelClient("http://127.0.0.1:9", "k" * 40, retries=1, backoff_s=0.01)
    with pytest.raises(OSError):
        client.predict("x")
