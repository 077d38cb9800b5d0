"""What the commands share: the consoles they print to and the options several of them take."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hpo.core.storage import user_path
from hpo.search.ray_setup import IN_JOB, RayTarget

console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)

SweepArg = Annotated[Path, typer.Argument(help="The sweep file (YAML).")]
RunDirArg = Annotated[
    str, typer.Argument(help="A run dir: <storage>/<name>, a folder or s3://, gs:// URI.")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a key: --set search.num_samples=2 (repeatable)."),
]
AddressOption = Annotated[
    str | None,
    typer.Option(
        envvar="RAY_ADDRESS",
        help="Ray cluster to join (default: RAY_ADDRESS, else an embedded Ray).",
    ),
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


def use_ray_token() -> None:
    """Ray clients send the cluster's auth token only with RAY_AUTH_MODE=token: where this
    machine has a token (Ray's token file, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN), the
    commands that join a cluster use it without asking."""
    token_file = user_path(os.environ.get("RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token"))
    if "RAY_AUTH_MODE" not in os.environ and (
        os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file()
    ):
        os.environ["RAY_AUTH_MODE"] = "token"


def ray_target(address: str | None, verbose: bool) -> RayTarget:
    """Where the command's Ray runs; inside a Ray Job (`hpo submit`), the job's own runtime env
    already carries the trials' environment."""
    if address:
        use_ray_token()
    return RayTarget(address=address, verbose=verbose, in_job=IN_JOB in os.environ)
