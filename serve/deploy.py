"""Deploying a run's best checkpoint: the promotion gate, the API key, and `serve.run`.

`deploy_run` judges the run's best checkpoint on the sweep's test split against the live model
of the same sweep name, writes the decision to `<storage>/promotions.jsonl`, and (re)deploys
whichever model is live afterwards. `rollback` redeploys the previous promoted model. The
storage may be a bucket; the API key file then stays in its local mirror (or use HPO_API_KEY).
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.storage import StorageDir
from serve import gate
from serve.config import ServeConfig
from trainables.errors import UserError

KEY_FILE = "api_key"


@dataclass
class Deployment:
    name: str
    url: str
    decision: gate.Decision
    live: dict[str, Any]
    key_file: Path | None


def api_key(storage: StorageDir) -> tuple[str, Path | None]:
    """HPO_API_KEY, else the key in `<storage>/api_key` (made on first use, mode 600; never
    uploaded: for a bucket it is in the local mirror)."""
    if os.environ.get("HPO_API_KEY"):
        return os.environ["HPO_API_KEY"], None
    path = storage.local / KEY_FILE
    if not path.is_file():
        storage.local.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip(), path


def checkpoint_sha256(checkpoint: str) -> str:
    """The sha256 of the checkpoint's weights (every *.safetensors / *.bin file, in order)."""
    from serve.model import checkpoint_folder

    folder = Path(checkpoint_folder(checkpoint))
    digest = hashlib.sha256()
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    for path in files:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def test_metric(sweep, checkpoint: str) -> float | None:
    """The sweep's metric on `data.test` for a checkpoint; None without a test split."""
    from serve.model import TextClassifier
    from trainables.data import load_test_split
    from trainables.metrics import compute_metrics

    classifier = TextClassifier(checkpoint)
    examples = load_test_split(sweep.data, classifier.labels)
    if examples is None:
        return None
    pairs = examples.pairs or [None] * len(examples)
    order = np.argsort([len(t) for t in examples.texts])  # similar lengths pad little
    probabilities = np.zeros((len(examples), len(classifier.labels)))
    for start in range(0, len(order), 64):
        chunk = order[start : start + 64]
        predictions = classifier.predict(
            [examples.texts[i] for i in chunk], [pairs[i] for i in chunk]
        )
        for index, prediction in zip(chunk, predictions):
            probabilities[index] = [prediction.probabilities[label] for label in classifier.labels]
    metrics = compute_metrics(np.log(np.clip(probabilities, 1e-12, 1.0)), examples.labels)
    return metrics[sweep.metric]


def _candidate(run: StorageDir) -> tuple[Any, dict[str, Any]]:
    from search.results import read_summary
    from search.runner import load_run_sweep

    sweep = load_run_sweep(run)
    summary = read_summary(run)
    if summary is None or summary.get("best") is None:
        raise UserError(f"{run}: no best checkpoint yet (summary.json); has the sweep ended?")
    return sweep, summary


def _start_serve(settings: ServeConfig) -> None:
    from ray import serve

    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # hpo prints the URL itself
    serve.start(http_options={"host": settings.host, "port": settings.port})


def _application(name: str, live: dict[str, Any], settings: ServeConfig, key: str):
    """The Serve application of a promoted model (a `promotions.jsonl` entry)."""
    import ray
    import transformers

    from serve.app import build_app

    info = {
        "name": name,
        "run_dir": live["run_dir"],
        "trial_id": live["trial_id"],
        "config": live["config"],
        "checkpoint": live["checkpoint"],
        "checkpoint_sha256": live["checkpoint_sha256"],
        "metric": live["metric"],
        "validation_metric": live["validation_metric"],
        "test_metric": live["test_metric"],
        "deployed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "ray_version": ray.__version__,
        "transformers_version": transformers.__version__,
    }
    return build_app(live["checkpoint"], info, key, settings)


def _run_app(name: str, live: dict[str, Any], settings: ServeConfig, key: str) -> str:
    from ray import serve

    _start_serve(settings)
    serve.run(_application(name, live, settings, key), name=name, route_prefix="/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    return f"http://{host}:{settings.port}"


def service_app(args: dict[str, str]):
    """Application builder for Ray Serve config files and KubeRay's RayService
    (`import_path: serve.deploy:service_app`, `args: {storage: ..., name: ...}`): the live model
    of a sweep name, as the promotion ledger in `storage` records it."""
    from search.runner import load_run_sweep

    storage, name = StorageDir.at(args["storage"]), args["name"]
    if storage.remote and not os.environ.get("HPO_API_KEY"):
        raise UserError(f"storage {storage} is a bucket, where hpo keeps no API key: set "
                        f"HPO_API_KEY for the service (a Kubernetes Secret)")
    stack = gate.promoted_stack(storage, name)
    if not stack:
        raise UserError(f"{name}: no promoted model in {storage}/promotions.jsonl; run "
                        f"`hpo run` or `hpo serve` against this storage first")
    live = stack[-1]
    key, _ = api_key(storage)
    return _application(name, live, load_run_sweep(StorageDir.at(live["run_dir"])).serve, key)


def deploy_run(run: StorageDir) -> Deployment:
    """Gates the run's best checkpoint and deploys the live model of its sweep name.
    Ray must be connected (the runner's embedded Ray, or a cluster)."""
    sweep, summary = _candidate(run)
    storage = run.parent
    best = summary["best"]
    sha256 = checkpoint_sha256(best["checkpoint"])
    stack = gate.promoted_stack(storage, sweep.name)
    live = stack[-1] if stack else None
    if live is not None and live["checkpoint_sha256"] == sha256:
        candidate_test, verdict, reason, live_test = (
            live["test_metric"], "unchanged", "this checkpoint is already the live model",
            live["test_metric"],
        )
    else:
        candidate_test = test_metric(sweep, best["checkpoint"])
        promote, reason, live_test = gate.judge(
            candidate_test, live, mode=sweep.mode, tolerance=sweep.serve.gate.tolerance
        )
        verdict = "promoted" if promote else "rejected"
    decision = gate.Decision(
        name=sweep.name, decision=verdict, reason=reason,
        metric=sweep.metric, mode=sweep.mode, run_dir=run.location, trial_id=best["trial_id"],
        checkpoint=best["checkpoint"], checkpoint_sha256=sha256,
        validation_metric=best["metric"], test_metric=candidate_test, config=best["config"],
        live_test_metric=live_test, tolerance=sweep.serve.gate.tolerance,
    )
    gate.append(storage, decision)
    live = gate.promoted_stack(storage, sweep.name)[-1]
    key, key_file = api_key(storage)
    url = _run_app(sweep.name, live, sweep.serve, key)
    return Deployment(sweep.name, url, decision, live, key_file)


def rollback(storage: StorageDir, name: str, settings: ServeConfig) -> Deployment:
    """Redeploys the model promoted before the live one, and records the rollback."""
    stack = gate.promoted_stack(storage, name)
    if len(stack) < 2:
        raise UserError(
            f"{name}: nothing to roll back to ({len(stack)} promoted model(s) in "
            f"{storage}/{gate.LEDGER})"
        )
    current, previous = stack[-1], stack[-2]
    decision = gate.Decision(
        name=name, decision="rollback",
        reason=f"rolled back from trial {current['trial_id']} to {previous['trial_id']}",
        metric=current["metric"], mode=current["mode"], run_dir=current["run_dir"],
        trial_id=current["trial_id"], checkpoint=current["checkpoint"],
        checkpoint_sha256=current["checkpoint_sha256"],
        validation_metric=current["validation_metric"], test_metric=current["test_metric"],
        config=current["config"],
    )
    gate.append(storage, decision)
    key, key_file = api_key(storage)
    url = _run_app(name, previous, settings, key)
    return Deployment(name, url, decision, previous, key_file)
