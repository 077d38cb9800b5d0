"""The deployed service over HTTP: every endpoint and input shape, keys, bad input, batching,
load with malformed requests, and the promotion gate with rollback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from hpo.cli.serving import deploy_run
from hpo.core.storage import StorageDir
from hpo.search.runner import run_sweep
from hpo.serve import deploy, measure
from tests import traffic
from tests.serve.conftest import (
    BATCH_WAIT_S,
    MAX_QUEUED_REQUESTS,
    MAX_REQUEST_BYTES,
    serving_sweep,
)

JSON = "application/json"

pytestmark = pytest.mark.usefixtures("ray_session", "data_dir")


def post(service, path: str, body: Any = None, *, key: str | None = "default", raw: str = None):
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {service['key'] if key == 'default' else key}"
    data = raw if raw is not None else json.dumps(body)
    return requests.post(service["url"] + path, data=data, headers=headers, timeout=60)


def test_first_deploy_is_promoted_with_a_private_key(service) -> None:
    deployment = service["deployment"]
    assert deployment.decision.decision == "promoted"
    assert deployment.decision.test_metric is not None
    assert oct(deployment.key_file.stat().st_mode)[-3:] == "600"
    ledger = (service["storage"] / "promotions.jsonl").read_text().splitlines()
    assert json.loads(ledger[0])["decision"] == "promoted"


def test_health_and_docs_need_no_key(service) -> None:
    assert requests.get(service["url"] + "/healthz", timeout=10).json() == {"status": "ok"}
    assert "/predict" in requests.get(service["url"] + "/openapi.json", timeout=10).json()["paths"]
    assert requests.get(service["url"] + "/docs", timeout=10).status_code == 200
    page = requests.get(service["url"] + "/", timeout=10)
    assert page.status_code == 200 and "hpo playground" in page.text


@pytest.mark.parametrize(
    "body, count",
    [
        ({"text": "a fine film"}, 1),
        ({"texts": ["great", "awful", "fine"]}, 3),
        ({"text": "the cat sat", "text_pair": "a cat was sitting"}, 1),
        ({"pairs": [["a", "b"], ["c", "d"]]}, 2),
    ],
)
def test_predict_input_shapes(service, body: dict, count: int) -> None:
    answer = post(service, "/predict", body)
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert len(predictions) == count
    for prediction in predictions:
        assert prediction["label"] in ("negative", "positive")
        assert set(prediction["probabilities"]) == {"negative", "positive"}
        assert prediction["score"] == max(prediction["probabilities"].values())


def test_explain_returns_token_attributions(service) -> None:
    answer = post(service, "/explain", {"text": "a gorgeous witty film"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [t["token"] for t in body["tokens"]] == ["a", "gorgeous", "witty", "film"]
    assert body["label"] in ("negative", "positive") and body["method"] == "integrated_gradients"


def test_info_describes_the_live_model(service) -> None:
    info = requests.get(
        service["url"] + "/info", timeout=10, headers={"X-API-Key": service["key"]}
    ).json()
    best = service["summary"]["best"]
    assert info["trial_id"] == best["trial_id"] and info["config"] == best["config"]
    assert info["validation_metric"] == best["metric"]
    assert 0 <= info["test_metric"] <= 1
    assert len(info["checkpoint_sha256"]) == 64
    assert {"deployed_at", "ray_version", "transformers_version", "run_dir"} <= set(info)
    assert (info["runtime"], info["linear_layers"]) == ("torch", "onednn_packed")  # on a CPU


def test_haproxy_passes_requests_to_the_replica(service) -> None:
    """ray[serve] ships HAProxy on Linux, so `serve.ingress: auto` puts it in front of the
    replica, with this process's own files (not Ray's machine-wide /tmp/haproxy-serve)."""
    import psutil

    info = requests.get(
        service["url"] + "/info", timeout=10, headers={"X-API-Key": service["key"]}
    ).json()
    assert info["ingress"] == "haproxy"
    ours = f"hpo-haproxy-{os.getpid()}"
    assert any(
        "haproxy" in p.info["name"] and ours in " ".join(p.info["cmdline"] or [])
        for p in psutil.process_iter(["name", "cmdline"])
    )


@pytest.mark.parametrize("path", ["/predict", "/explain", "/info"])
@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_keys_are_required(service, path: str, key: str | None) -> None:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    if path == "/info":
        answer = requests.get(service["url"] + path, headers=headers, timeout=10)
    else:
        answer = requests.post(
            service["url"] + path, json={"text": "x"}, headers=headers, timeout=10
        )
    assert answer.status_code == 401
    assert "API key" in answer.json()["error"]


@pytest.mark.parametrize(
    "body, status, message",
    [
        ("{not json", 400, "not valid JSON"),
        ({}, 422, 'send exactly one of "text", "texts" or "pairs"'),
        ({"text": ""}, 422, "text: String should have at least 1 character"),
        ({"text": 5}, 422, "text: Input should be a valid string"),
        ({"texts": []}, 422, "texts: List should have at least 1 item"),
        ({"texts": ["a", None]}, 422, "texts.1: Input should be a valid string"),
        ({"texts": ["a"] * 9}, 422, "9 inputs in one request; send at most 8"),
        ({"text": "x" * 2001}, 422, "input 0 has a text longer than 2000 characters"),
        ({"pairs": [["only one"]]}, 422, "pairs.0: List should have at least 2 items"),
        ({"text_pair": "b"}, 422, "send exactly one of"),
        ({"text": "a", "texts": ["b"]}, 422, "send exactly one of"),
        ({"text": "a", "extra": 1}, 422, "extra: Extra inputs are not permitted"),
        ([1, 2], 422, "Input should be a valid dictionary"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_message(service, body, status: int, message: str) -> None:
    raw = body if isinstance(body, str) else None
    answer = post(service, "/predict", None if raw else body, raw=raw)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


def test_long_texts_are_truncated_and_said_so(service) -> None:
    answer = post(service, "/predict", {"text": "good " * 300})
    assert answer.status_code == 200
    assert answer.json()["predictions"][0]["truncated"]
    assert "truncated" in answer.json()["warnings"][0]


def test_concurrent_requests_share_forward_passes(service) -> None:
    def one(i: int) -> int:
        return post(service, "/predict", {"text": f"request number {i}"}).status_code

    with ThreadPoolExecutor(32) as pool:
        assert set(pool.map(one, range(96))) == {200}
    batching = requests.get(
        service["url"] + "/info", timeout=10, headers={"X-API-Key": service["key"]}
    ).json()["batching"]
    assert batching["largest"] > 1
    assert batching["batches"] < batching["texts"]


def test_a_lone_client_does_not_wait_for_company(service) -> None:
    """After a batch of one, the next forward pass starts at once instead of waiting
    `batch_wait_timeout_s` for texts that a lone client will not send."""
    post(service, "/predict", {"text": "warm up"})  # may wait: the batch before held many
    latencies = []
    for i in range(5):
        started = time.monotonic()
        assert post(service, "/predict", {"text": f"alone {i}"}).status_code == 200
        latencies.append(time.monotonic() - started)
    assert sorted(latencies)[2] < BATCH_WAIT_S / 2, latencies


def test_hostile_traffic_never_gets_a_5xx(service) -> None:
    """1,000 requests from 32 clients, a fifth of them malformed in every way (bad JSON,
    wrong types, empty, oversize, non-UTF-8, deeply nested, wrong content type, huge bodies,
    no key): every malformed one gets a 4xx with a JSON error, none a 5xx
    (bench/serve_load.py --hostile sends 10,000)."""
    outcome = traffic.send(service["url"], service["key"], 1000, 32, 0.2, MAX_REQUEST_BYTES)
    print("statuses:", dict(outcome.statuses))
    assert outcome.server_errors == 0
    assert outcome.not_json_errors == []
    assert outcome.count(malformed=True, predicate=lambda s: 400 <= s < 500) == 200
    assert outcome.count(malformed=False, predicate=lambda s: s == 200) == 800
    kinds = {kind for kind, _ in outcome.statuses}
    assert {"non_utf8", "deeply_nested", "huge_body", "wrong_content_type"} <= kinds


def test_schemathesis_finds_no_5xx_and_no_schema_violation(service) -> None:
    """Schemathesis generates requests from the live /openapi.json (with the key, and without
    it): every check passes (no 5xx, status codes and bodies as documented)."""
    schemathesis = Path(sys.executable).with_name("schemathesis")
    done = subprocess.run(
        [
            str(schemathesis),
            "run",
            service["url"] + "/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "60",
            "-H",
            f"Authorization: Bearer {service['key']}",
            "--seed",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(done.stdout[-3000:])
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_the_key_is_checked_before_the_body_is_read(service) -> None:
    url = service["url"] + "/predict"
    huge = b'{"text": "' + b"x" * (3 * MAX_REQUEST_BYTES) + b'"}'
    unkeyed = [{"Content-Type": JSON}, {"Content-Type": "text/plain"}]
    for headers in [*unkeyed, {"Content-Type": JSON, "Authorization": "Bearer wrong"}]:
        answer = requests.post(url, data=huge, headers=headers, timeout=60)
        assert answer.status_code == 401, answer.text
        assert answer.headers["www-authenticate"] == "Bearer"
    keyed = {"Authorization": f"Bearer {service['key']}"}
    too_big = requests.post(url, data=huge, headers={**keyed, "Content-Type": JSON}, timeout=60)
    assert too_big.status_code == 413 and "larger than" in too_big.json()["error"]
    chunks = (b"x" * 65536 for _ in range(3 * MAX_REQUEST_BYTES // 65536))  # no Content-Length
    streamed = requests.post(url, data=chunks, headers={**keyed, "Content-Type": JSON}, timeout=60)
    assert streamed.status_code == 413
    plain = requests.post(
        url, data="{}", headers={**keyed, "Content-Type": "text/plain"}, timeout=10
    )
    assert plain.status_code == 415 and "application/json" in plain.json()["error"]


def test_explanations_and_predictions_at_once(service) -> None:
    """Ten explanations at once (one runs, four wait, the rest get a retryable 503, see
    test_limits.py), with predictions and health checks among them: all answered."""
    text = "a gorgeous witty and moving film " * 12
    with ThreadPoolExecutor(12) as pool:
        explains = [pool.submit(post, service, "/explain", {"text": text}) for _ in range(10)]
        predictions = [post(service, "/predict", {"text": "fine"}) for _ in range(5)]
        health = requests.get(service["url"] + "/healthz", timeout=10)
        explained = [future.result() for future in explains]
    assert all(answer.status_code == 200 for answer in predictions), [
        (a.status_code, a.text) for a in predictions
    ]
    assert health.status_code == 200
    statuses = Counter(answer.status_code for answer in explained)
    assert set(statuses) <= {200, 503} and statuses[200] >= 1, [
        a.text for a in explained if a.status_code not in (200, 503)
    ]
    refused = [answer for answer in explained if answer.status_code == 503]
    assert all(answer.headers.get("retry-after") == "1" for answer in refused), [
        (a.headers, a.text) for a in refused
    ]
    print("explain statuses with 10 at once:", dict(statuses))


def test_gate_rejects_worse_promotes_better_and_rolls_back(
    service, tiny_model: str, monkeypatch: pytest.MonkeyPatch, serve_port: int
) -> None:
    """Candidates' test metrics are fixed here (evaluating one is tested on its own)."""
    storage = service["storage"]
    live_metric = service["deployment"].decision.test_metric
    first_trial = service["deployment"].live["trial_id"]

    def info() -> dict:
        return requests.get(
            service["url"] + "/info", timeout=10, headers={"X-API-Key": service["key"]}
        ).json()

    def deploy_with(test_value: float, search_seed: int):
        summary = run_sweep(serving_sweep(tiny_model, storage, serve_port, search_seed))
        monkeypatch.setattr(deploy, "metric_on_test_split", lambda *args: test_value)
        return deploy_run(StorageDir.at(summary["run_dir"])), summary

    worse, _ = deploy_with(live_metric - 0.2, search_seed=1)
    assert worse.decision.decision == "rejected"
    assert "worse than the live model's" in worse.decision.reason
    assert info()["trial_id"] == first_trial  # the live model stays

    better, better_summary = deploy_with(live_metric + 0.1, search_seed=2)
    assert better.decision.decision == "promoted"
    assert info()["trial_id"] == better_summary["best"]["trial_id"]

    rolled = deploy.rollback(StorageDir.at(storage), "served")
    assert rolled.decision.decision == "rollback"
    assert info()["trial_id"] == first_trial

    again = deploy_run(StorageDir.at(service["summary"]["run_dir"]))  # the live model itself
    assert again.decision.decision == "unchanged"
    decisions = [
        json.loads(line)["decision"]
        for line in (storage / "promotions.jsonl").read_text().splitlines()
    ]
    assert decisions == ["promoted", "rejected", "promoted", "rollback", "unchanged"]


def test_test_metric_matches_a_manual_evaluation(service, tiny_model: str, serve_port: int) -> None:
    from hpo.serve.model import TextClassifier
    from hpo.trainables.data import load_test_split

    sweep = serving_sweep(tiny_model, service["storage"], serve_port)
    checkpoint = service["summary"]["best"]["checkpoint"]
    value = measure.metric_on_test_split(checkpoint, sweep.data, sweep.metric)
    classifier = TextClassifier(checkpoint)
    examples = load_test_split(sweep.data, classifier.labels)
    predicted = [classifier.labels.index(p.label) for p in classifier.predict(examples.texts)]
    manual = sum(int(p == y) for p, y in zip(predicted, examples.labels, strict=True)) / len(
        predicted
    )
    assert value == pytest.approx(manual)


def test_the_rayservice_builder_builds_the_live_model(service) -> None:
    """`hpo.serve.deploy:service_app` is what the rendered RayService imports."""
    from ray.serve import Application

    from hpo.core.errors import UserError

    application = deploy.service_app({"storage": str(service["storage"]), "name": "served"})
    assert isinstance(application, Application)
    with pytest.raises(UserError, match="nobody: no promoted model"):
        deploy.service_app({"storage": str(service["storage"]), "name": "nobody"})


def _replica_pids() -> set[int]:
    import psutil

    return {
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if "ServeReplica:served:ModelService" in " ".join(p.info["cmdline"] or [])
    }


def test_a_killed_replica_costs_retrying_clients_nothing(service) -> None:
    """The replica SIGKILLed under load from more clients than Serve queues: Serve restarts
    it. Plain clients see some requests in flight fail (behind HAProxy their connections
    close without an answer; behind Serve's proxy they get a plain 500) and, while it
    restarts, either wait or, when the queue is full, get a retryable 503 with Retry-After
    (which of the two, timing decides: CI has seen both); ModelClient's retries absorb all of
    it."""
    import psutil

    from hpo.serve.client import ModelClient

    stop_at = time.time() + 30
    plain: Counter = Counter()
    retried: Counter = Counter()

    def plain_client() -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {service['key']}"}
        while time.time() < stop_at:
            try:
                answer = session.post(
                    service["url"] + "/predict", json={"text": "fine"}, headers=headers, timeout=120
                )
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                plain["closed"] += 1
                continue
            plain[answer.status_code] += 1
            if answer.status_code == 503:
                assert answer.headers.get("retry-after")

    def retrying_client() -> None:
        client = ModelClient(service["url"], service["key"])  # its default retries
        while time.time() < stop_at:
            try:
                client.predict("fine")
                retried["ok"] += 1
            except Exception as err:  # noqa: BLE001 - counted, then asserted on
                retried[type(err).__name__] += 1

    plain_clients = MAX_QUEUED_REQUESTS + 8
    with ThreadPoolExecutor(plain_clients + 4) as pool:
        clients = [pool.submit(c) for c in [plain_client] * plain_clients + [retrying_client] * 4]
        time.sleep(5)
        killed = _replica_pids()
        assert killed
        for pid in killed:
            psutil.Process(pid).kill()
        for future in clients:
            future.result()
    print("plain clients:", dict(plain), "retrying clients:", dict(retried))
    assert _replica_pids() and not _replica_pids() & killed  # Serve started a new replica
    assert set(plain) <= {200, 500, 503, "closed"} and plain[200] > 0
    assert set(retried) == {"ok"}
    assert post(service, "/predict", {"text": "fine"}).status_code == 200
