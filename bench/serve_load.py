"""Requests per second and latency percentiles of a served model, at several numbers of
concurrent clients, each sending single-text /predict requests back to back.

    python bench/serve_load.py URL --key-file runs/api_key [--clients 1 32] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import numpy as np
import requests

TEXTS = [
    "a gorgeous , witty , seductive movie .",
    "the worst film of the year : dull , lifeless and painfully unfunny .",
    "it 's a charming and often affecting journey .",
    "unflinchingly bleak and desperate",
    "the acting , costumes , music , cinematography and sound are all astounding",
]


def load(url: str, key: str, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(index: int) -> None:
        nonlocal errors
        session = requests.Session()
        headers = {"Authorization": f"Bearer {key}"}
        i = index
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            response = session.post(
                f"{url}/predict", json={"text": TEXTS[i % len(TEXTS)]}, headers=headers, timeout=60
            )
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                errors += response.status_code != 200
            i += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    values = np.array(latencies) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(float(np.percentile(values, 50)), 1),
        "p99_ms": round(float(np.percentile(values, 99)), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--key-file", type=Path, required=True)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    key = args.key_file.read_text().strip()
    batching_before = requests.get(f"{args.url}/info", headers={"X-API-Key": key}, timeout=10)
    results = [load(args.url, key, clients, args.seconds) for clients in args.clients]
    batching = requests.get(f"{args.url}/info", headers={"X-API-Key": key}, timeout=10)
    print(
        json.dumps(
            {
                "runs": results,
                "batching_before": batching_before.json()["batching"],
                "batching_after": batching.json()["batching"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
