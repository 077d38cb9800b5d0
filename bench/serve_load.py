"""Load on a served model, three ways:

- throughput: requests/s and latency percentiles at several numbers of concurrent clients,
  each sending single-text /predict requests back to back;
- `--explain-clients K`: the same /predict load again while K clients send /explain requests
  back to back, so /predict's p99 with and without explanations sits side by side;
- `--hostile N`: N /predict requests from 32 clients, a fifth malformed in every way a client
  can (the load test's traffic, tests/traffic.py): the statuses, and how many were 5xx.

    python bench/serve_load.py URL --key-file runs/api_key [--clients 1 32] [--seconds 20]
        [--explain-clients 2] [--hostile 10000 --max-request-bytes 4000000]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests/traffic.py

from tests import traffic  # noqa: E402

TEXTS = [
    "a gorgeous , witty , seductive movie .",
    "the worst film of the year : dull , lifeless and painfully unfunny .",
    "it 's a charming and often affecting journey .",
    "unflinchingly bleak and desperate",
    "the acting , costumes , music , cinematography and sound are all astounding",
]


def _loop(url: str, path: str, key: str, stop_at: float, index: int, record) -> None:
    """One client: requests back to back until `stop_at`, each recorded as (seconds, ok)."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {key}"}
    while time.perf_counter() < stop_at:
        started = time.perf_counter()
        response = session.post(
            f"{url}{path}", json={"text": TEXTS[index % len(TEXTS)]}, headers=headers, timeout=120
        )
        record(time.perf_counter() - started, response.status_code == 200)
        index += 1


def load(url: str, key: str, clients: int, seconds: float, explain_clients: int = 0) -> dict:
    """/predict from `clients` threads for `seconds`, with `explain_clients` threads sending
    /explain meanwhile."""
    measured: dict[str, list[tuple[float, bool]]] = {"/predict": [], "/explain": []}
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def recorder(path: str):
        def record(elapsed: float, ok: bool) -> None:
            with lock:
                measured[path].append((elapsed, ok))

        return record

    paths = ["/predict"] * clients + ["/explain"] * explain_clients
    threads = [
        threading.Thread(target=_loop, args=(url, path, key, stop_at, i, recorder(path)))
        for i, path in enumerate(paths)
    ]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    predictions = measured["/predict"]
    milliseconds = np.array([elapsed for elapsed, _ in predictions]) * 1000
    result = {
        "clients": clients,
        "explain_clients": explain_clients,
        "requests": len(predictions),
        "errors": sum(not ok for _, ok in predictions),
        "requests_per_s": round(len(predictions) / wall, 1),
        "p50_ms": round(float(np.percentile(milliseconds, 50)), 1),
        "p99_ms": round(float(np.percentile(milliseconds, 99)), 1),
    }
    if explain_clients:
        explained = measured["/explain"]
        result["explanations"] = sum(ok for _, ok in explained)
        result["explain_refused"] = sum(not ok for _, ok in explained)  # 503: slots full
    return result


def hostile(url: str, key: str, total: int, max_request_bytes: int) -> dict:
    outcome = traffic.send(url, key, total, 32, 0.2, max_request_bytes)
    by_status: dict[str, int] = {}
    for (_, status), count in outcome.statuses.items():
        by_status[str(status)] = by_status.get(str(status), 0) + count
    return {
        "requests": total,
        "clients": 32,
        "malformed": outcome.count(True, lambda status: True),
        "malformed_4xx": outcome.count(True, lambda status: 400 <= status < 500),
        "good_200": outcome.count(False, lambda status: status == 200),
        "responses_5xx": outcome.server_errors,
        "errors_not_json": len(outcome.not_json_errors),
        "statuses": dict(sorted(by_status.items())),
        "by_kind": {
            f"{kind} {status}": n for (kind, status), n in sorted(outcome.statuses.items())
        },
        "seconds": round(outcome.seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--key-file", type=Path, required=True)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--explain-clients", type=int, default=0)
    parser.add_argument("--hostile", type=int, default=0, metavar="N")
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=4_000_000,
        help="the service's serve.max_request_bytes",
    )
    args = parser.parse_args()
    url, key = args.url.rstrip("/"), args.key_file.read_text().strip()
    report: dict = {}
    if args.hostile:
        report["hostile"] = hostile(url, key, args.hostile, args.max_request_bytes)
    else:
        runs = [load(url, key, clients, args.seconds) for clients in args.clients]
        if args.explain_clients:
            runs += [
                load(url, key, clients, args.seconds, args.explain_clients)
                for clients in args.clients
            ]
        report["runs"] = runs
    info = requests.get(f"{url}/info", headers={"X-API-Key": key}, timeout=10).json()
    report["batching"] = info["batching"]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
