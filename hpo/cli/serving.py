"""`hpo serve`, `hpo rollback`, `hpo query`, and the deployment at the end of `hpo run`: the CLI
reads the run dir (its sweep file and summary) and hands `hpo.serve` explicit inputs."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from hpo.cli.options import (
    AddressOption,
    DetachOption,
    KeepServingOption,
    RunDirArg,
    VerboseOption,
    console,
    ray_target,
)
from hpo.core.errors import UserError
from hpo.core.rundir import LEDGER
from hpo.core.storage import StorageDir
from hpo.search.ray_setup import RayTarget, connect_ray
from hpo.search.results import read_summary
from hpo.search.sweep import Sweep
from hpo.search.sweepfile import load_run_sweep
from hpo.serve.client import ModelClient, ServiceError
from hpo.serve.gate import Candidate, promoted_stack, read_ledger


def _candidate(run: StorageDir, sweep: Sweep) -> Candidate:
    summary = read_summary(run)
    if summary is None or summary.get("best") is None:
        raise UserError(f"{run}: no best checkpoint yet (summary.json); has the sweep ended?")
    best, selection = summary["best"], summary.get("selection") or {}
    if selection and selection["trial_id"] is None:
        raise UserError(
            f"serve.select {selection['rule']}: {selection['reason']}; nothing deployed "
            f"(the front is in {run}/summary.json)"
        )
    select = sweep.serve.select
    return Candidate(
        name=sweep.name,
        checkpoint=best["checkpoint"],
        metric=sweep.metric,
        mode=sweep.mode,
        validation_metric=best["metric"],
        run_dir=run.location,
        trial_id=best["trial_id"],
        config=best["config"],
        select=select.model_dump(exclude_none=True) if select and sweep.costs else None,
    )


def _metric_text(value: float | None) -> str:
    return "n/a (no test split)" if value is None else f"{value:.4f}"


def _announce(deployment: Any, smoke_test: list[str]) -> None:
    """How to reach the service, and its answers to the sweep's smoke-test texts."""
    key_file = deployment.key_file
    key_hint = f"key file: {key_file}" if key_file else "key: $HPO_API_KEY"
    key_expr = f"$(cat {key_file})" if key_file else "$HPO_API_KEY"
    console.print(
        f"\n[bold green]serving[/] {deployment.name} (trial {deployment.live['trial_id']}, "
        f"test {deployment.live['metric']} {_metric_text(deployment.live['test_metric'])}) at "
        f"{deployment.url}\n  playground: {deployment.url}/   API docs: {deployment.url}/docs"
        f'\n  {key_hint}\n  try: curl -s {deployment.url}/predict -H "Authorization: Bearer '
        f'{key_expr}" -H \'Content-Type: application/json\' -d \'{{"text": "a fine film"}}\''
        f'\n  or:  hpo query {deployment.url} "a fine film"'
        + (f" --key-file {key_file}" if key_file else "")
    )
    if not smoke_test:
        return
    client = ModelClient(deployment.url, api_key=key_file.read_text().strip() if key_file else None)
    for text in smoke_test:
        answer = client.predict(text)
        console.print(
            f"  {escape(repr(text))} -> [bold]{escape(answer['label'])}[/] ({answer['score']:.3f})"
        )


def _wait(keep_serving: bool) -> None:
    """Serve in the foreground until Ctrl-C (the embedded Ray goes away with this process)."""
    if not keep_serving:
        return
    # Tune leaves its own SIGINT handler behind, which would swallow the first Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:  # from the announcement on: a Ctrl-C or SIGTERM right after it is a clean stop
        console.print("serving until Ctrl-C")
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopped serving")  # the embedded Ray, and Serve with it, ends with us


def deploy_run(run: StorageDir, sweep: Sweep | None = None) -> Any:
    """Offers a finished run's best checkpoint to the gate (against the live model of the
    sweep's name in the run's storage) and deploys the live model; returns the Deployment."""
    from hpo.serve.deploy import deploy  # imports Ray Serve and torch

    sweep = sweep or load_run_sweep(run)
    return deploy(
        _candidate(run, sweep), storage=run.parent, settings=sweep.serve, test_data=sweep.data
    )


def serve_run(run: StorageDir, sweep: Sweep, *, keep_serving: bool, detach: bool) -> None:
    """Deploys a finished run's best model behind the gate and says how to reach it."""
    deployment = deploy_run(run, sweep)
    decision = deployment.decision
    colour = "green" if decision.decision == "promoted" else "yellow"
    console.print(f"gate: [{colour}]{decision.decision}[/]: {escape(decision.reason)}")
    for note in deployment.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    skipped = read_ledger(run.parent).skipped
    if skipped:
        console.print(
            f"[yellow]note:[/] {LEDGER} lines {', '.join(map(str, skipped))} could not be read "
            "(a crash mid-write, or an edit) and were skipped"
        )
    _announce(deployment, sweep.serve.smoke_test)
    _wait(keep_serving and not detach)


def serve_after_sweep(
    summary: dict[str, Any], *, no_serve: bool, keep_serving: bool, detach: bool
) -> None:
    """The end of `hpo run` and `hpo resume`: (by default) the best model's deployment."""
    run = StorageDir.at(summary["run_dir"])
    sweep = load_run_sweep(run)
    if sweep.serve.enabled and not no_serve:
        serve_run(run, sweep, keep_serving=keep_serving, detach=detach)


def serve(
    run_dir: RunDirArg,
    address: AddressOption = None,
    keep_serving: KeepServingOption = True,
    detach: DetachOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Deploy a finished run's best model with Ray Serve, behind the promotion gate."""
    run = StorageDir.at(run_dir)
    sweep = load_run_sweep(run)
    embedded = connect_ray(ray_target(address, verbose), serve=sweep.serve)
    serve_run(run, sweep, keep_serving=keep_serving and embedded, detach=detach)


def rollback(
    name: Annotated[str, typer.Argument(help="The sweep name whose live model to roll back.")],
    storage: Annotated[str, typer.Option(help="The sweeps' storage (folder or URI).")] = "./runs",
    address: AddressOption = None,
    keep_serving: KeepServingOption = True,
    verbose: VerboseOption = False,
) -> None:
    """Redeploy the model promoted before the live one of a sweep name."""
    from hpo.serve import deploy  # imports Ray Serve and torch

    root = StorageDir.at(storage)
    stack = promoted_stack(root, name)
    if not stack:
        raise UserError(f"{name}: no promoted model in {storage}/{LEDGER}")
    target: RayTarget = ray_target(address, verbose)
    embedded = connect_ray(target, serve=deploy.settings_of(stack[-1]))
    deployment = deploy.rollback(root, name)
    console.print(f"[yellow]rolled back[/] {name}: {deployment.decision.reason}")
    _announce(deployment, [])
    _wait(keep_serving and embedded)


def _print_answer(answer: dict[str, Any]) -> None:
    probabilities = ", ".join(f"{k} {v:.3f}" for k, v in answer["probabilities"].items())
    console.print(
        f"[bold]{escape(answer['label'])}[/] ({answer['score']:.3f})  "
        f"{escape('[' + probabilities + ']')}"
    )
    for warning in answer.get("warnings", []):
        console.print(f"[yellow]note:[/] {escape(warning)}")


def _print_tokens(tokens: list[dict[str, Any]]) -> None:
    """Each token with its attribution, green towards the label and red away from it."""
    console.print(
        "tokens: "
        + " ".join(
            f"{escape(t['token'])}([{'green' if t['score'] >= 0 else 'red'}]{t['score']:+.2f}[/])"
            for t in tokens
        )
    )


def query(
    url: Annotated[str, typer.Argument(help="The service, e.g. http://127.0.0.1:8000")],
    text: Annotated[str, typer.Argument(help="The text to classify.")],
    pair: Annotated[str | None, typer.Option(help="Second text (sentence-pair models).")] = None,
    explain: Annotated[bool, typer.Option(help="Also show token attributions.")] = False,
    key: Annotated[str | None, typer.Option(help="API key (default: HPO_API_KEY).")] = None,
    key_file: Annotated[Path | None, typer.Option(help="File holding the API key.")] = None,
) -> None:
    """Ask a served model for a label (and explanation)."""
    if key_file is not None:
        key = key_file.read_text().strip()
    client = ModelClient(url, api_key=key)
    try:
        answer = client.explain(text, pair) if explain else client.predict(text, pair)
    except ServiceError as err:
        raise UserError(f"the service refused the query: {err}") from None
    except OSError as err:
        raise UserError(f"cannot reach {url}: {err}") from None
    _print_answer(answer)
    if explain:
        _print_tokens(answer["tokens"])
