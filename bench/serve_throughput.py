"""hpo's deployment of a trained SST-2 checkpoint against the service users write by hand
(`naive_serve_app.py`: FastAPI + uvicorn calling `transformers.pipeline` per request), same
checkpoint and torch threads, both on loopback, driven by `wrk` (`wrk_predict.lua`) at 1, 8 and
32 connections, alternating sides, `--rounds` times.

    python bench/serve_throughput.py [--run-dir RUN_DIR] [--runtime torch|int8]
        [--ingress auto|haproxy|proxy] [--seconds 15] [--rounds 3]

Without `--run-dir` it first trains one short quickstart trial to serve. The run dir's files
are copied to a scratch storage (its own promotion ledger; `serve.runtime`, `serve.ingress` and
the port set there), so the user's ledger is untouched. It also checks that both services give
the same labels for 50 validation sentences. Writes
bench/results/serve_throughput[_int8][_proxy].json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import requests
import yaml
from quickstart_runs import REPO, run_quickstart
from results import QUICK, spread, write_result

from hpo.serve.client import ModelClient

BENCH = Path(__file__).resolve().parent
CLIENTS = (1, 8, 32)
THREADS = 2
GOAL_RATIO_32 = 3.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_run_dir(storage: str) -> Path:
    """One short quickstart trial (shorter in bench-quick), set to serve with THREADS torch
    threads."""
    run_quickstart(
        storage,
        {
            "search.num_samples": "1",
            "search.max_concurrent": "1",
            "scheduler": "{name: fifo, max_epochs: 1}",
            "data.max_train_samples": "240" if QUICK else "800",
            "train.evals_per_epoch": "1",
            "serve.cpus_per_replica": str(THREADS),
        },
    )
    return Path(storage) / "quickstart"


def served_copy(run_dir: Path, scratch: Path, runtime: str, ingress: str = "auto") -> Path:
    """The run dir's own files (not its trials' folders: the summary names the checkpoint)
    in a scratch storage, to be served with `runtime` and `ingress` on a free port."""
    copy = scratch / run_dir.name
    copy.mkdir(parents=True)
    for path in run_dir.iterdir():
        if path.is_file():
            shutil.copy2(path, copy / path.name)
    sweep = yaml.safe_load((copy / "sweep.yaml").read_text())
    sweep.setdefault("serve", {}).update(runtime=runtime, ingress=ingress, port=_free_port())
    (copy / "sweep.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False))
    return copy


def _wait_until_up(url: str, process: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the service exited with {process.returncode}")
        try:
            if requests.get(f"{url}/healthz", timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url}: not up after {seconds:.0f} s")


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def hpo_service(run_dir: Path):
    """`hpo serve RUN_DIR` in the foreground; yields its URL and API key."""
    process = subprocess.Popen(
        [sys.executable, "-m", "hpo.cli", "serve", str(run_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert process.stdout is not None
    url = key_file = None
    for line in process.stdout:
        url = url or next(iter(re.findall(r"http://127\.0\.0\.1:\d+", line)), None)
        key_file = key_file or next(iter(re.findall(r"key file: (\S+)", line)), None)
        if "serving until" in line or "Ctrl-C" in line:
            break
    if url is None or key_file is None:
        raise RuntimeError("hpo serve did not print its URL and key file")
    try:
        _wait_until_up(url, process)
        yield url, Path(key_file).read_text().strip()
    finally:
        _stop(process)


def replica_threads(run_dir: Path) -> int:
    """The torch threads of hpo's replica (`serve.cpus_per_replica`), given to the naive app too."""
    sweep = yaml.safe_load((run_dir / "sweep.yaml").read_text())
    return max(1, int(sweep.get("serve", {}).get("cpus_per_replica", 1)))


@contextmanager
def naive_service(checkpoint: str, threads: int):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "naive_serve_app:app", "--port", str(port)],
        cwd=BENCH,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "CHECKPOINT": checkpoint, "THREADS": str(threads)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
        yield url
    finally:
        _stop(process)


def wrk(url: str, key: str, connections: int, seconds: float) -> dict:
    done = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",  # wrk takes whole seconds only
            "--timeout",
            "30s",
            "-s",
            str(BENCH / "wrk_predict.lua"),
            f"{url}/predict",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "BENCH_API_KEY": key},
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["requests_per_s"] = round(figures["requests"] / figures["duration_s"], 1)
    return figures


def same_labels(ours: str, key: str, naive: str, texts: list[str]) -> dict:
    headers = {"Authorization": f"Bearer {key}"}
    agree = 0
    for text in texts:
        mine = requests.post(f"{ours}/predict", json={"text": text}, headers=headers, timeout=60)
        theirs = requests.post(f"{naive}/predict", json={"text": text}, timeout=60)
        agree += mine.json()["predictions"][0]["label"] == theirs.json()["label"]
    return {"texts": len(texts), "same_label": agree}


def measure(ours: str, key: str, naive: str, seconds: float, rounds: int) -> dict:
    for url, url_key in ((ours, key), (naive, "")):  # warm both up
        wrk(url, url_key, 8, 3)
    table: dict = {}
    for connections in CLIENTS:
        sides: dict[str, list[dict]] = {"hpo": [], "naive": []}
        for round_ in range(rounds):
            order = [("hpo", ours, key), ("naive", naive, "")]
            for side, url, url_key in order if round_ % 2 == 0 else reversed(order):
                run = wrk(url, url_key, connections, seconds)
                sides[side].append(run)
                print(f"{connections} connections, {side}: {json.dumps(run)}", flush=True)
        ratios = [
            a["requests_per_s"] / b["requests_per_s"]
            for a, b in zip(sides["hpo"], sides["naive"], strict=True)
        ]
        table[connections] = {
            side: {
                "requests_per_s": spread([r["requests_per_s"] for r in runs]),
                "p50_ms": spread([r["p50_ms"] for r in runs]),
                "p99_ms": spread([r["p99_ms"] for r in runs]),
                "errors": sum(r["non_2xx"] + r["socket_errors"] for r in runs),
            }
            for side, runs in sides.items()
        }
        table[connections]["throughput_ratio"] = spread(ratios)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", type=Path)
    parser.add_argument("--runtime", choices=["torch", "int8"], default="torch")
    parser.add_argument("--ingress", choices=["auto", "haproxy", "proxy"], default="auto")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as storage:
        trained = args.run_dir or train_run_dir(f"{storage}/train")
        run_dir = served_copy(trained, Path(storage, "serve"), args.runtime, args.ingress)
        summary = json.loads((run_dir / "summary.json").read_text())
        checkpoint = summary["best"]["checkpoint"]
        validation = pd.read_csv(Path(os.environ["HPO_DATA"]) / "sst2" / "validation.csv")
        threads = replica_threads(run_dir)
        with hpo_service(run_dir) as (ours, key), naive_service(checkpoint, threads) as naive:
            labels = same_labels(ours, key, naive, validation.sentence.head(50).tolist())
            ingress = ModelClient(ours, key).info()["ingress"]
            table = measure(ours, key, naive, args.seconds, args.rounds)
    at_1, at_32 = table[1], table[32]
    ratio_32 = at_32["throughput_ratio"]["median"]
    met = (
        ratio_32 >= GOAL_RATIO_32
        and at_32["hpo"]["p99_ms"]["median"] <= at_32["naive"]["p99_ms"]["median"]
        and at_1["throughput_ratio"]["median"] >= 1.0
        and labels["same_label"] == labels["texts"]
    )
    path = write_result(
        "serve_throughput"
        + ("" if args.runtime == "torch" else f"_{args.runtime}")
        + ("_proxy" if args.ingress == "proxy" else ""),
        goal=f"≥ {GOAL_RATIO_32:.0f}× a naive FastAPI + pipeline app at 32 clients with p99 ≤ "
        "its p99; no worse at 1 client; same labels",
        met=met,
        ratio=ratio_32,
        figures={
            "threads": threads,
            "runtime": args.runtime,
            "ingress": ingress,
            "seconds_per_run": args.seconds,
            "load_generator": "wrk -t1 (bench/wrk_predict.lua)",
            "labels": labels,
            "by_connections": table,
        },
        summary=f"{ingress} ingress, 32 clients: {ratio_32:.2f}× (p99 "
        f"{at_32['hpo']['p99_ms']['median']:.0f} vs "
        f"{at_32['naive']['p99_ms']['median']:.0f} ms); 1 client: "
        f"{at_1['throughput_ratio']['median']:.2f}×; labels "
        f"{labels['same_label']}/{labels['texts']} equal",
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
