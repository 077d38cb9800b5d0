"""Deploying a candidate: the promotion gate, the API key, and `serve.run`.

`deploy` judges a candidate checkpoint on the test split against the live model of the same
sweep name, writes the decision to `<storage>/promotions.jsonl`, and (re)deploys whichever
model is live afterwards. `rollback` redeploys the previous promoted model, and `service_app`
builds the live model's application for Serve config files (KubeRay's RayService), both from
the ledger alone. The storage may be a bucket; the API key file then stays in its local mirror
(or use HPO_API_KEY).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hpo.core.errors import UserError
from hpo.core.rundir import LEDGER
from hpo.core.storage import StorageDir
from hpo.serve import gate
from hpo.serve.app import build_app
from hpo.serve.config import ServeConfig
from hpo.serve.keys import api_key
from hpo.serve.measure import checkpoint_sha256, metric_on_test_split
from hpo.trainables.config import DataConfig


@dataclass
class Deployment:
    name: str
    url: str
    decision: gate.Decision
    live: dict[str, Any]
    key_file: Path | None


def _settings_of(entry: dict[str, Any]) -> ServeConfig:
    """The serving settings a ledger entry was decided with (defaults for entries written
    before the ledger recorded them)."""
    return ServeConfig.model_validate(entry.get("serve") or {})


def _application(name: str, live: dict[str, Any], settings: ServeConfig, key: str) -> Any:
    """The Serve application of a promoted model (a `promotions.jsonl` entry)."""
    import ray
    import transformers

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
    """Deploys the application on the connected Ray; returns the service's URL."""
    from ray import serve

    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # hpo prints the URL itself
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(_application(name, live, settings, key), name=name, route_prefix="/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    return f"http://{host}:{settings.port}"


def _decide(
    candidate: gate.Candidate,
    sha256: str,
    live: dict[str, Any] | None,
    settings: ServeConfig,
    test_data: DataConfig,
) -> gate.Decision:
    """The gate's decision on a candidate against the live model (None: there is none)."""
    if live is not None and live["checkpoint_sha256"] == sha256:
        verdict, reason = "unchanged", "this checkpoint is already the live model"
        test = live_test = live["test_metric"]
    else:
        test = metric_on_test_split(candidate.checkpoint, test_data, candidate.metric)
        tolerance = settings.gate.tolerance
        promote, reason, live_test = gate.judge(
            test, live, mode=candidate.mode, tolerance=tolerance
        )
        verdict = "promoted" if promote else "rejected"
    return gate.Decision(
        name=candidate.name,
        decision=verdict,
        reason=reason,
        metric=candidate.metric,
        mode=candidate.mode,
        run_dir=candidate.run_dir,
        trial_id=candidate.trial_id,
        checkpoint=candidate.checkpoint,
        checkpoint_sha256=sha256,
        validation_metric=candidate.validation_metric,
        test_metric=test,
        config=candidate.config,
        live_test_metric=live_test,
        tolerance=settings.gate.tolerance,
        serve=settings.model_dump(mode="json"),
    )


def deploy(
    candidate: gate.Candidate, *, storage: StorageDir, settings: ServeConfig, test_data: DataConfig
) -> Deployment:
    """Gates a candidate and deploys, with `settings`, the live model of its sweep name (the
    candidate if it wins). Ray must be connected (an embedded Ray, or a cluster)."""
    stack = gate.promoted_stack(storage, candidate.name)
    live = stack[-1] if stack else None
    sha256 = checkpoint_sha256(candidate.checkpoint)
    decision = _decide(candidate, sha256, live, settings, test_data)
    gate.append(storage, decision)
    live = gate.promoted_stack(storage, candidate.name)[-1]
    key, key_file = api_key(storage)
    url = _run_app(candidate.name, live, settings, key)
    return Deployment(candidate.name, url, decision, live, key_file)


def rollback(storage: StorageDir, name: str) -> Deployment:
    """Redeploys the model promoted before the live one, with the settings it was served with,
    and records the rollback."""
    stack = gate.promoted_stack(storage, name)
    if len(stack) < 2:
        raise UserError(
            f"{name}: nothing to roll back to ({len(stack)} promoted model(s) in "
            f"{storage}/{LEDGER})"
        )
    current, previous = stack[-1], stack[-2]
    decision = replace(
        gate.Decision.from_entry(current),
        decision="rollback",
        reason=f"rolled back from trial {current['trial_id']} to {previous['trial_id']}",
        time=time.time(),
    )
    gate.append(storage, decision)
    key, key_file = api_key(storage)
    url = _run_app(name, previous, _settings_of(previous), key)
    return Deployment(name, url, decision, previous, key_file)


def service_app(args: dict[str, str]) -> Any:
    """Application builder for Ray Serve config files and KubeRay's RayService
    (`import_path: hpo.serve.deploy:service_app`, `args: {storage: ..., name: ...}`): the live
    model of a sweep name, as the promotion ledger in `storage` records it."""
    storage, name = StorageDir.at(args["storage"]), args["name"]
    if storage.remote and not os.environ.get("HPO_API_KEY"):
        raise UserError(
            f"storage {storage} is a bucket, where hpo keeps no API key: set HPO_API_KEY for "
            "the service (a Kubernetes Secret)"
        )
    stack = gate.promoted_stack(storage, name)
    if not stack:
        raise UserError(
            f"{name}: no promoted model in {storage}/{LEDGER}; run `hpo run` or `hpo serve` "
            "against this storage first"
        )
    live = stack[-1]
    key, _ = api_key(storage)
    return _application(name, live, _settings_of(live), key)
