"""The `hpo` command line: thin typer commands that call one function each. User errors are
caught here, at the edge, and printed as one short message with exit code 2."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from cluster.local import DEFAULT_STATE
from search.storage import StorageDir
from trainables.errors import SweepInterrupted, UserError

app = typer.Typer(
    help="Hyperparameter search for Hugging Face text classifiers on Ray.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
cluster_app = typer.Typer(help="A local multi-node Ray cluster, and configs for real clusters.",
                          no_args_is_help=True)
app.add_typer(cluster_app, name="cluster")
jobs_app = typer.Typer(help="Sweeps submitted as Ray Jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)

SweepArg = Annotated[Path, typer.Argument(help="The sweep file (YAML).")]
RunDirArg = Annotated[
    str, typer.Argument(help="A run dir: <storage>/<name>, a folder or s3://, gs:// URI.")
]
SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a key: --set search.num_samples=2 (repeatable)."),
]
AddressOption = Annotated[
    Optional[str],
    typer.Option(help="Ray cluster to join (default: RAY_ADDRESS, else an embedded Ray)."),
]
NoServeOption = Annotated[
    bool, typer.Option("--no-serve", help="Do not deploy the best model when the sweep ends.")
]
KeepServingOption = Annotated[
    bool,
    typer.Option(
        "--keep-serving/--no-keep-serving",
        help="With the embedded Ray, serve in the foreground until Ctrl-C (default), or exit "
        "after the smoke test.",
    ),
]
DetachOption = Annotated[
    bool,
    typer.Option("--detach", help="On a cluster (--address): leave the service running and exit."),
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show Ray's own logs.")]


@app.command()
def validate(sweep: SweepArg, set_: SetOption = None) -> None:
    """Check a sweep file and print what it would run."""
    from search.sweep import load_sweep

    loaded = load_sweep(sweep, set_ or [])
    console.print(
        f"[green]ok[/] {sweep}: {loaded.num_trials()} trials of {loaded.model}, "
        f"{loaded.search.algorithm} search, {loaded.scheduler.name} scheduler, "
        f"metric {loaded.metric} ({loaded.mode})"
    )


@app.command()
def schema() -> None:
    """Print the JSON Schema of sweep files (for editor completion)."""
    from search.sweep import Sweep

    console.print_json(json.dumps(Sweep.model_json_schema()))


@app.command()
def run(
    sweep: SweepArg,
    set_: SetOption = None,
    address: AddressOption = None,
    no_serve: NoServeOption = False,
    keep_serving: KeepServingOption = True,
    detach: DetachOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Run a sweep, then deploy its best model behind the promotion gate (unless --no-serve)."""
    from search.runner import run_sweep
    from search.sweep import load_sweep

    summary = run_sweep(load_sweep(sweep, set_ or []), address=address, console=console,
                        verbose=verbose)
    _best_then_serve(summary, no_serve=no_serve, keep_serving=keep_serving, detach=detach)


@app.command()
def resume(
    run_dir: RunDirArg,
    address: AddressOption = None,
    no_serve: NoServeOption = False,
    keep_serving: KeepServingOption = True,
    detach: DetachOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Continue an interrupted sweep from its run dir (then deploy, as `hpo run`)."""
    from search.runner import resume_sweep

    summary = resume_sweep(StorageDir.at(run_dir), address=address, console=console,
                           verbose=verbose)
    _best_then_serve(summary, no_serve=no_serve, keep_serving=keep_serving, detach=detach)


@app.command("serve")
def serve_command(
    run_dir: RunDirArg,
    address: AddressOption = None,
    keep_serving: KeepServingOption = True,
    detach: DetachOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Deploy a finished run's best model with Ray Serve, behind the promotion gate."""
    from search.runner import connect_ray, load_run_sweep

    run = StorageDir.at(run_dir)
    sweep = load_run_sweep(run)
    embedded = connect_ray(sweep, address, verbose)
    _serve(run, sweep.serve.smoke_test, keep_serving=keep_serving and embedded, detach=detach)


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="The sweep name whose live model to roll back.")],
    storage: Annotated[str, typer.Option(help="The sweeps' storage (folder or URI).")] = "./runs",
    address: AddressOption = None,
    keep_serving: KeepServingOption = True,
    verbose: VerboseOption = False,
) -> None:
    """Redeploy the model promoted before the live one of a sweep name."""
    from search.runner import connect_ray, load_run_sweep
    from serve.deploy import rollback as roll_back
    from serve.gate import promoted_stack

    root = StorageDir.at(storage)
    stack = promoted_stack(root, name)
    if not stack:
        raise UserError(f"{name}: no promoted model in {storage}/promotions.jsonl")
    sweep = load_run_sweep(StorageDir.at(stack[-1]["run_dir"]))
    embedded = connect_ray(sweep, address, verbose)
    deployment = roll_back(root, name, sweep.serve)
    console.print(f"[yellow]rolled back[/] {name}: {deployment.decision.reason}")
    _announce(deployment, sweep.serve.smoke_test)
    _wait(keep_serving and embedded)


@app.command()
def query(
    url: Annotated[str, typer.Argument(help="The service, e.g. http://127.0.0.1:8000")],
    text: Annotated[str, typer.Argument(help="The text to classify.")],
    pair: Annotated[Optional[str], typer.Option(help="Second text (sentence-pair models).")] = None,
    explain: Annotated[bool, typer.Option(help="Also show token attributions.")] = False,
    key: Annotated[Optional[str], typer.Option(help="API key (default: HPO_API_KEY).")] = None,
    key_file: Annotated[Optional[Path], typer.Option(help="File holding the API key.")] = None,
) -> None:
    """Ask a served model for a label (and explanation)."""
    from serve.client import ModelClient, ServiceError

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
        console.print("tokens: " + " ".join(
            f"{t['token']}([{'green' if t['score'] >= 0 else 'red'}]{t['score']:+.2f}[/])"
            for t in answer["tokens"]))


@app.command()
def compare(
    sweep: SweepArg,
    algorithms: Annotated[Optional[str], typer.Option(
        help="Comma-separated: grid,random,tpe,hyperopt,gp (default: compare.algorithms).")] = None,
    schedulers: Annotated[Optional[str], typer.Option(
        help="Comma-separated: fifo,asha,hyperband,successive_halving,median.")] = None,
    seeds: Annotated[Optional[int], typer.Option(help="Seeds per algorithm and scheduler.")] = None,
    budget: Annotated[Optional[str], typer.Option(
        help="Training samples per arm (20000) or epochs ('6 epochs').")] = None,
    set_: SetOption = None,
    address: AddressOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Run every algorithm x scheduler x seed under the same budget; report and TensorBoard."""
    from search.compare import run_comparison
    from search.sweep import load_sweep

    options = {"algorithms": algorithms, "schedulers": schedulers, "seeds": seeds,
               "budget": budget}
    overrides = [*(set_ or [])]
    for key, value in options.items():
        if value is None:
            continue
        if key in ("algorithms", "schedulers"):
            value = "[" + ",".join(part.strip() for part in value.split(",")) + "]"
        overrides.append(f"compare.{key}={value}")
    compare_dir = run_comparison(load_sweep(sweep, overrides), address=address, console=console,
                                 verbose=verbose)
    _print_comparison(compare_dir)


@app.command()
def report(
    directory: Annotated[str, typer.Argument(help="A run dir, or a comparison dir.")],
) -> None:
    """Write report.md and its plots for a finished sweep (or redo a comparison's)."""
    from search.compare import PLAN
    from search.report import write_comparison_report, write_run_report
    from search.runner import SWEEP_COPY

    folder = StorageDir.at(directory)
    folder.pull(PLAN, SWEEP_COPY)
    if (folder.local / PLAN).is_file():
        write_comparison_report(folder)
        _print_comparison(folder)
    else:
        console.print(f"report: {write_run_report(folder)}")


@app.command()
def tensorboard(
    directory: Annotated[str, typer.Argument(help="A run dir or a comparison dir.")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free one).")] = 6006,
) -> None:
    """Start TensorBoard on the logs of a run or comparison and print its URL."""
    import time

    from search.tensorboard import find_logdir, launch_tensorboard

    logdir = find_logdir(StorageDir.at(directory))
    url = launch_tensorboard(logdir, host, port)
    console.print(f"TensorBoard on {logdir}: {url}  (Ctrl-C to stop)", markup=False)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopped TensorBoard")


JobsAddressOption = Annotated[
    str,
    typer.Option("--address", envvar="RAY_ADDRESS",
                 help="The cluster's dashboard (Jobs API), e.g. http://HEAD:8265."),
]
JobIdArg = Annotated[str, typer.Argument(help="The job id that `hpo submit` printed.")]


@app.command()
def submit(
    sweep: SweepArg,
    address: JobsAddressOption,
    set_: SetOption = None,
    no_serve: NoServeOption = False,
    wait: Annotated[bool, typer.Option(
        "--wait/--no-wait", help="Stream the job's logs until it ends, or print its id.")] = True,
) -> None:
    """Submit a sweep to a Ray cluster as a Ray Job (the code and sweep file travel with it)."""
    from cluster.jobs import follow, submit_sweep
    from search.sweep import load_sweep

    env = {k: os.environ[k] for k in ("HPO_DATA", "HF_HUB_OFFLINE") if k in os.environ}
    job_id = submit_sweep(load_sweep(sweep, set_ or []), address, serve=not no_serve, env=env)
    console.print(f"submitted job [bold]{job_id}[/] to {address}")
    if not wait:
        console.print(f"  follow it: hpo jobs logs {job_id} --address {address}")
        return
    status = follow(address, job_id, lambda text: console.out(text, end=""))
    console.print(f"job {job_id}: [{'green' if status == 'SUCCEEDED' else 'red'}]{status}[/]")
    if status != "SUCCEEDED":
        raise typer.Exit(1)


@jobs_app.command("list")
def jobs_list(address: JobsAddressOption) -> None:
    """The cluster's jobs: id, status, sweep."""
    from cluster.jobs import list_jobs

    for job in list_jobs(address):
        console.print(f"{job['job_id']}  {job['status']:<10} {job['sweep'] or job['entrypoint']}")


@jobs_app.command("status")
def jobs_status(job_id: JobIdArg, address: JobsAddressOption) -> None:
    """One job's status and message."""
    from cluster.jobs import job_status

    console.print_json(json.dumps(job_status(address, job_id)))


@jobs_app.command("logs")
def jobs_logs(
    job_id: JobIdArg, address: JobsAddressOption,
    follow_: Annotated[bool, typer.Option("--follow", help="Stream until the job ends.")] = False,
) -> None:
    """A job's logs so far (or streamed, with --follow)."""
    from cluster.jobs import follow, job_logs

    if follow_:
        follow(address, job_id, lambda text: console.out(text, end=""))
    else:
        console.out(job_logs(address, job_id), end="")


@jobs_app.command("stop")
def jobs_stop(job_id: JobIdArg, address: JobsAddressOption) -> None:
    """Stop a running job."""
    from cluster.jobs import stop_job

    stopped = stop_job(address, job_id)
    console.print(f"job {job_id}: {'stopping' if stopped else 'was not running'}")


StateOption = Annotated[
    Path, typer.Option("--state", help="Where `up` records the nodes it started.")
]


@cluster_app.command("up")
def cluster_up(
    workers: Annotated[int, typer.Option(help="Worker nodes besides the head.")] = 2,
    cpus_per_node: Annotated[int, typer.Option(help="Logical CPUs of each worker node.")] = 1,
    head_cpus: Annotated[int, typer.Option(help="Logical CPUs of the head (0: no trials).")] = 0,
    port: Annotated[Optional[int], typer.Option(help="GCS port (default: a free one).")] = None,
    dashboard_port: Annotated[Optional[int], typer.Option(help="Dashboard/Jobs port.")] = None,
    state: StateOption = DEFAULT_STATE,
) -> None:
    """Start a head and N worker nodes on this machine (`ray start`), tracked by pid."""
    from cluster.local import cluster_up as start

    cluster = start(workers, cpus_per_node=cpus_per_node, head_cpus=head_cpus, port=port,
                    dashboard_port=dashboard_port, state_file=state)
    console.print(
        f"[green]up[/]: head + {workers} worker node(s), token auth on\n"
        f"  export RAY_AUTH_MODE=token RAY_ADDRESS={cluster.address}\n  "
        f"(hpo run SWEEP --address {cluster.address})\n  jobs and dashboard: {cluster.dashboard}"
        f"  (hpo submit SWEEP --address {cluster.dashboard})\n  stop: hpo cluster down"
    )


@cluster_app.command("down")
def cluster_down(state: StateOption = DEFAULT_STATE) -> None:
    """Stop exactly the nodes that `hpo cluster up` started."""
    from cluster.local import cluster_down as stop

    stopped = stop(state)
    console.print(f"stopped {len(stopped)} node(s): {', '.join(stopped) or 'none were running'}")


@cluster_app.command("render")
def cluster_render(
    sweep: SweepArg,
    target: Annotated[str, typer.Option(help="kuberay | aws | gcp")] = "kuberay",
    image: Annotated[str, typer.Option(help="Container image with hpo installed.")] = "hpo:latest",
    gpus_per_node: Annotated[int, typer.Option(help="GPUs of each worker node.")] = 1,
    max_nodes: Annotated[int, typer.Option(help="Most worker nodes the autoscaler starts.")] = 8,
    min_nodes: Annotated[int, typer.Option(help="Worker nodes kept up.")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="Write here instead of stdout.")] = None,
    data_dir: Annotated[str, typer.Option(
        help="HPO_DATA on the cluster: where its nodes see the data.")] = "/mnt/shared/data",
    set_: SetOption = None,
) -> None:
    """Print the cluster config of a sweep: KubeRay manifests or a cluster-launcher YAML."""
    from cluster.render import TARGETS, ClusterShape, render
    from search.sweep import load_sweep

    os.environ["HPO_DATA"] = data_dir  # the sweep's ${HPO_DATA} as the cluster sees it
    if target not in TARGETS:
        raise UserError(f"--target {target}: choose one of {', '.join(TARGETS)}")
    shape = ClusterShape(image=image, gpus_per_node=gpus_per_node, max_nodes=max_nodes,
                         min_nodes=min_nodes)
    text = render(load_sweep(sweep, set_ or []), target, shape)
    if out is None:
        console.out(text, end="")
    else:
        out.write_text(text)
        console.print(f"wrote {out}")


def _print_comparison(compare_dir: StorageDir) -> None:
    from rich.table import Table

    from search.report import COMPARISON, REPORT

    comparison = json.loads((compare_dir.local / COMPARISON).read_text())
    metric = comparison["metric"]
    grid = Table(title=f"{comparison['name']}: best {metric} after "
                 f"{comparison['budget_samples']:,} training samples per arm "
                 f"(target {comparison['target']:.4f})")
    for column in ("scheduler", "algorithm", f"best {metric}", "± std", "seeds", "rank",
                   "samples to target", "trials", "wall s"):
        grid.add_column(column, no_wrap=True)
    for row in comparison["rows"]:
        to_target = ("never" if row["samples_to_target"] is None else
                     f"{row['samples_to_target']:,.0f} ({row['reached']}/{len(row['finals'])})")
        grid.add_row(row["scheduler"], row["algorithm"], f"{row['mean']:.4f}", f"{row['std']:.4f}",
                     str(len(row["finals"])), f"{row['mean_rank']:.2f}", to_target,
                     f"{row['trials']:.1f}", f"{row['wall_s']:.0f}")
    wide = console if console.is_terminal else Console(width=120)  # logs: no squeezed columns
    wide.print(grid)
    for text in comparison["verdicts"].values():
        console.print(text)
    console.print(f"report: {compare_dir.local / REPORT}\n"
                  f"TensorBoard: hpo tensorboard {compare_dir}")


@app.command()
def best(run_dir: RunDirArg, json_: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print the best trial of a finished sweep."""
    from search.results import read_summary

    summary = read_summary(StorageDir.at(run_dir))
    if summary is None:
        raise UserError(f"{run_dir}: no summary.json yet; is the sweep still running?")
    if json_:
        console.print_json(json.dumps(summary["best"]))
    else:
        _print_best(summary)


@app.command()
def status(
    run_dir: RunDirArg,
    watch: Annotated[bool, typer.Option(help="Refresh until the sweep ends.")] = True,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
) -> None:
    """Show the trials of a sweep: state, epoch, metric, best so far (live while it runs)."""
    from search.status import show_status

    show_status(StorageDir.at(run_dir), console=console, watch=watch, interval=interval)


def _print_answer(answer: dict) -> None:
    probabilities = ", ".join(f"{k} {v:.3f}" for k, v in answer["probabilities"].items())
    console.print(f"[bold]{escape(answer['label'])}[/] ({answer['score']:.3f})  "
                  f"{escape('[' + probabilities + ']')}")
    for warning in answer.get("warnings", []):
        console.print(f"[yellow]note:[/] {warning}")


def _announce(deployment, smoke_test: list[str]) -> None:
    """How to reach the service, and its answers to the sweep's smoke-test texts."""
    from serve.client import ModelClient

    key_hint = (
        f"key file: {deployment.key_file}" if deployment.key_file else "key: $HPO_API_KEY"
    )
    key_expr = f'$(cat {deployment.key_file})' if deployment.key_file else "$HPO_API_KEY"
    console.print(
        f"\n[bold green]serving[/] {deployment.name} (trial {deployment.live['trial_id']}, "
        f"test {deployment.live['metric']} {_metric_text(deployment.live['test_metric'])}) at "
        f"{deployment.url}\n  playground: {deployment.url}/   API docs: {deployment.url}/docs"
        f"\n  {key_hint}\n  try: curl -s {deployment.url}/predict -H \"Authorization: Bearer "
        f"{key_expr}\" -H 'Content-Type: application/json' -d '{{\"text\": \"a fine film\"}}'"
        f"\n  or:  hpo query {deployment.url} \"a fine film\""
        + (f" --key-file {deployment.key_file}" if deployment.key_file else "")
    )
    if not smoke_test:
        return
    key = deployment.key_file.read_text().strip() if deployment.key_file else None
    client = ModelClient(deployment.url, api_key=key)
    for text in smoke_test:
        answer = client.predict(text)
        console.print(f"  {text!r} -> [bold]{answer['label']}[/] ({answer['score']:.3f})")


def _metric_text(value: float | None) -> str:
    return "n/a (no test split)" if value is None else f"{value:.4f}"


def _wait(keep_serving: bool) -> None:
    """Serve in the foreground until Ctrl-C (the embedded Ray goes away with this process)."""
    if not keep_serving:
        return
    import signal
    import time

    # Tune leaves its own SIGINT handler behind, which would swallow the first Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    console.print("serving until Ctrl-C")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopped serving")  # the embedded Ray, and Serve with it, ends with us


def _serve(run: StorageDir, smoke_test: list[str], *, keep_serving: bool, detach: bool) -> None:
    from serve.deploy import deploy_run

    deployment = deploy_run(run)
    decision = deployment.decision
    colour = "green" if decision.decision == "promoted" else "yellow"
    console.print(f"gate: [{colour}]{decision.decision}[/]: {decision.reason}")
    _announce(deployment, smoke_test)
    _wait(keep_serving and not detach)


def _best_then_serve(summary: dict, *, no_serve: bool, keep_serving: bool, detach: bool) -> None:
    """The end of `hpo run` and `hpo resume`: the best trial, then (by default) its deployment."""
    from search.runner import load_run_sweep

    _print_best(summary)
    run = StorageDir.at(summary["run_dir"])
    settings = load_run_sweep(run).serve
    if settings.enabled and not no_serve:
        _serve(run, settings.smoke_test, keep_serving=keep_serving, detach=detach)


def _print_best(summary: dict) -> None:
    best_trial = summary.get("best")
    if best_trial is None:
        console.print("[red]no trial produced a checkpoint[/]")
        return
    console.print(
        f"\n[bold]best {summary['metric']}: {best_trial['metric']:.4f}[/] "
        f"(trial {best_trial['trial_id']}, epoch {best_trial['epoch']}) after "
        f"{summary['num_trials']} trials in {summary['wall_s']:.0f} s\n"
        f"config: {json.dumps(best_trial['config'])}\n"
        f"checkpoint: {best_trial['checkpoint']}"
    )


def main() -> None:
    """Entry point of the `hpo` script: user errors become a message and exit code 2."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        app()
    except SweepInterrupted as err:
        errors.print(f"[yellow]interrupted:[/] {escape(str(err))}")
        sys.exit(130)
    except UserError as err:
        errors.print(f"[red]error:[/] {escape(str(err))}")
        sys.exit(2)
    except KeyboardInterrupt:
        errors.print("interrupted; continue with `hpo resume RUN_DIR`")
        sys.exit(130)


if __name__ == "__main__":
    main()
