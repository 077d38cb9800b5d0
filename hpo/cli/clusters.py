"""The commands about clusters: `hpo cluster up|down|render`, `hpo submit`, and
`hpo jobs list|status|logs|stop`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from hpo.cli.options import NoServeOption, SetOption, SweepArg, console, use_ray_token
from hpo.cluster.jobs import follow, job_logs, job_status, list_jobs, stop_job, submit_sweep
from hpo.cluster.local import DEFAULT_STATE
from hpo.cluster.local import cluster_down as stop_cluster
from hpo.cluster.local import cluster_up as start_cluster
from hpo.cluster.render import TARGETS, ClusterShape, render
from hpo.core.errors import UserError
from hpo.search.sweepfile import load_sweep

JobsAddressOption = Annotated[
    str,
    typer.Option(
        "--address",
        envvar="RAY_ADDRESS",
        help="The cluster's dashboard (Jobs API), e.g. http://HEAD:8265.",
    ),
]
JobIdArg = Annotated[str, typer.Argument(help="The job id that `hpo submit` printed.")]
StateOption = Annotated[
    Path, typer.Option("--state", help="Where `up` records the nodes it started.")
]
FORWARDED_ENV = ("HPO_DATA", "HF_HUB_OFFLINE")
"""Variables of this shell that a submitted job's driver and trials get too."""


def _print_log(text: str) -> None:
    console.out(text, end="")


def submit(
    sweep: SweepArg,
    address: JobsAddressOption,
    set_: SetOption = None,
    no_serve: NoServeOption = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait", help="Stream the job's logs until it ends, or print its id."
        ),
    ] = True,
) -> None:
    """Submit a sweep to a Ray cluster as a Ray Job (the code and sweep file travel with it)."""
    use_ray_token()
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    job_id = submit_sweep(load_sweep(sweep, set_ or []), address, serve=not no_serve, env=env)
    console.print(f"submitted job [bold]{job_id}[/] to {address}")
    if not wait:
        console.print(f"  follow it: hpo jobs logs {job_id} --address {address}")
        return
    status = follow(address, job_id, _print_log)
    console.print(f"job {job_id}: [{'green' if status == 'SUCCEEDED' else 'red'}]{status}[/]")
    if status != "SUCCEEDED":
        raise typer.Exit(1)


def jobs_list(address: JobsAddressOption) -> None:
    """The cluster's jobs: id, status, sweep."""
    use_ray_token()
    for job in list_jobs(address):
        console.print(f"{job['job_id']}  {job['status']:<10} {job['sweep'] or job['entrypoint']}")


def jobs_status(job_id: JobIdArg, address: JobsAddressOption) -> None:
    """One job's status and message."""
    use_ray_token()
    console.print_json(json.dumps(job_status(address, job_id)))


def jobs_logs(
    job_id: JobIdArg,
    address: JobsAddressOption,
    follow_: Annotated[bool, typer.Option("--follow", help="Stream until the job ends.")] = False,
) -> None:
    """A job's logs so far (or streamed, with --follow)."""
    use_ray_token()
    if follow_:
        follow(address, job_id, _print_log)
    else:
        _print_log(job_logs(address, job_id))


def jobs_stop(job_id: JobIdArg, address: JobsAddressOption) -> None:
    """Stop a running job."""
    use_ray_token()
    stopped = stop_job(address, job_id)
    console.print(f"job {job_id}: {'stopping' if stopped else 'was not running'}")


def cluster_up(
    workers: Annotated[int, typer.Option(help="Worker nodes besides the head.")] = 2,
    cpus_per_node: Annotated[int, typer.Option(help="Logical CPUs of each worker node.")] = 1,
    head_cpus: Annotated[int, typer.Option(help="Logical CPUs of the head (0: no trials).")] = 0,
    port: Annotated[int | None, typer.Option(help="GCS port (default: a free one).")] = None,
    dashboard_port: Annotated[int | None, typer.Option(help="Dashboard/Jobs port.")] = None,
    state: StateOption = DEFAULT_STATE,
) -> None:
    """Start a head and N worker nodes on this machine (`ray start`), tracked by pid."""
    cluster = start_cluster(
        workers,
        cpus_per_node=cpus_per_node,
        head_cpus=head_cpus,
        port=port,
        dashboard_port=dashboard_port,
        state_file=state,
    )
    console.print(
        f"[green]up[/]: head + {workers} worker node(s), token auth on\n"
        f"  export RAY_AUTH_MODE=token RAY_ADDRESS={cluster.address}\n  "
        f"(hpo run SWEEP --address {cluster.address})\n  jobs and dashboard: {cluster.dashboard}"
        f"  (hpo submit SWEEP --address {cluster.dashboard})\n  stop: hpo cluster down"
    )


def cluster_down(state: StateOption = DEFAULT_STATE) -> None:
    """Stop exactly the nodes that `hpo cluster up` started."""
    stopped = stop_cluster(state)
    console.print(f"stopped {len(stopped)} node(s): {', '.join(stopped) or 'none were running'}")


def cluster_render(
    sweep: SweepArg,
    target: Annotated[str, typer.Option(help=" | ".join(TARGETS))] = "kuberay",
    image: Annotated[str, typer.Option(help="Container image with hpo installed.")] = "hpo:latest",
    gpus_per_node: Annotated[int, typer.Option(help="GPUs of each worker node.")] = 1,
    max_nodes: Annotated[int, typer.Option(help="Most worker nodes the autoscaler starts.")] = 8,
    min_nodes: Annotated[int, typer.Option(help="Worker nodes kept up.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    data_dir: Annotated[
        str, typer.Option(help="HPO_DATA on the cluster: where its nodes see the data.")
    ] = "/mnt/shared/data",
    set_: SetOption = None,
) -> None:
    """Print the cluster config of a sweep: KubeRay manifests or a cluster-launcher YAML."""
    if target not in TARGETS:
        raise UserError(f"--target {target}: choose one of {', '.join(TARGETS)}")
    shape = ClusterShape(
        image=image, gpus_per_node=gpus_per_node, max_nodes=max_nodes, min_nodes=min_nodes
    )
    # the sweep's ${HPO_DATA} as the cluster sees it
    loaded = load_sweep(sweep, set_ or [], env={**os.environ, "HPO_DATA": data_dir})
    text = render(loaded, target, shape)
    if out is None:
        console.out(text, end="")
    else:
        out.write_text(text)
        console.print(f"wrote {out}")
