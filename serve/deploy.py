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
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hpo.core.errors import UserError
from hpo.core.rundir import LEDGER
from hpo.core.storage import StorageDir
from hpo.serve import gate
from hpo.serve.app import build_app
from hpo.serve.config import ServeConfig
from hpo.serve.keys import api_key
from hpo.serve.measure import checkpoint_sha256, metric_on_test_split, served_latency_ms
from hpo.trainables.config import DataConfig


@dataclass
class Deployment:
    name: str
    url: str
    decision: gate.Decision
    live: dict[str, Any]
    key_file: Path | None
    notes: list[str] = field(default_factory=list)


def settings_of(entry: dict[str, Any]) -> ServeConfig:
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
    _start_serve(settings)
    serve.run(_application(name, live, settings, key), name=name, route_prefix="/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    return f"http://{host}:{settings.port}"


_BIND_FAILURE = re.compile(
    r"Failed to bind to address '([^']+)'|cannot bind socket \([^)]*\) for \[([^\]]+)\]"
)
"""How Serve's proxy and HAProxy say that their port is taken."""


def _start_serve(settings: ServeConfig) -> None:
    """Starts Ray Serve's ingress (a no-op where it runs already); a port that another program
    holds is the user's to fix, not a traceback from inside Ray."""
    from ray import serve
    from ray.exceptions import RayTaskError

    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
    except RayTaskError as err:  # Serve's proxy or HAProxy could not listen
        busy = _BIND_FAILURE.search(str(err))
        if busy is None:
            raise
        raise UserError(
            f"serve.port: cannot listen on {busy.group(1) or busy.group(2)}, which another "
            "program holds; stop it or set serve.port to a free port"
        ) from None


def deploy(
    candidate: gate.Candidate, *, storage: StorageDir, settings: ServeConfig, test_data: DataConfig
) -> Deployment:
    """Gates a candidate and deploys, with `settings`, the live model of its sweep name (the
    candidate if it wins). Ray must be connected (an embedded Ray, or a cluster)."""
    notes: list[str] = []

    def test_metric() -> float | None:
        try:
            return metric_on_test_split(
                candidate.checkpoint, test_data, candidate.metric, settings.runtime
            )
        except UserError as err:  # e.g. the test file is not on this machine
            notes.append(f"no test metric for the candidate: {err}")
            return None

    decision, live = gate.decide_and_append(
        storage,
        candidate,
        checkpoint_sha256(candidate.checkpoint),
        test_metric,
        tolerance=settings.gate.tolerance,
        serve=settings.model_dump(mode="json"),
        latency_ms=lambda checkpoint: served_latency_ms(
            checkpoint, test_data, settings.runtime, settings.replica_threads
        ),
    )
    if live is None:
        raise UserError(f"{candidate.name}: nothing to serve: {decision.reason}")
    if live["checkpoint_sha256"] != decision.checkpoint_sha256:  # the live model stays
        _verified(live)
    # the live model runs as it was judged: a rejected int8 candidate leaves it as it was
    settings = settings.model_copy(update={"runtime": settings_of(live).runtime})
    key, key_file = api_key(storage)
    url = _run_app(candidate.name, live, settings, key)
    return Deployment(candidate.name, url, decision, live, key_file, notes)


def _verified(entry: dict[str, Any]) -> dict[str, Any]:
    """A ledger entry whose checkpoint still has the weights that were promoted."""
    found = checkpoint_sha256(entry["checkpoint"])
    if found != entry["checkpoint_sha256"]:
        raise UserError(
            f"{entry['checkpoint']}: its weights changed since trial {entry['trial_id']} was "
            f"promoted (sha256 {found[:12]}..., the ledger has "
            f"{entry['checkpoint_sha256'][:12]}...); refusing to serve it"
        )
    return entry


def rollback(storage: StorageDir, name: str) -> Deployment:
    """Redeploys the model promoted before the live one, with the settings it was served with,
    and records the rollback."""
    stack = gate.promoted_stack(storage, name)
    if len(stack) < 2:
        raise UserError(
            f"{name}: nothing to roll back to ({len(stack)} promoted model(s) in "
            f"{storage}/{LEDGER})"
        )
    current, previous = stack[-1], _verified(stack[-2])
    decision = replace(
        gate.Decision.from_entry(current),
        decision="rollback",
        reason=f"rolled back from trial {current['trial_id']} to {previous['trial_id']}",
        time=time.time(),
    )
    gate.append(storage, decision)
    key, key_file = api_key(storage)
    url = _run_app(name, previous, settings_of(previous), key)
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
    live = _verified(stack[-1])
    key, _ = api_key(storage)
    return _application(name, live, settings_of(live), key)
