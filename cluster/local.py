"""A Ray cluster of a head and N worker nodes on this one machine (`hpo cluster up` / `down`),
to develop and test multi-node sweeps without cloud machines.

Each node is a `ray start --block` process that this module starts in its own process group and
records, with the cluster's address, in a state file. `down` signals exactly those processes
(a blocked `ray start` stops its raylet and workers as it exits) and never runs `ray stop`,
which would stop every Ray on the machine. Each node carries a custom resource naming it
(`hpo-node-head`, `hpo-node-1`, ...) so that work can be pinned to a node.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from hpo.core.errors import UserError
from hpo.core.storage import user_path, write_atomically

DEFAULT_STATE = Path("~/.hpo/local-cluster.json")
OBJECT_STORE_BYTES = 256 * 1024 * 1024  # per node: several nodes share this machine's memory


@dataclass(frozen=True)
class NodeProcess:
    name: str
    pid: int
    cpus: int
    log: str


@dataclass(frozen=True)
class LocalCluster:
    address: str  # host:port of the head's GCS: `hpo run --address` / RAY_ADDRESS
    dashboard: str  # http://host:port: `hpo submit --address`
    nodes: list[NodeProcess]

    def save(self, path: Path) -> None:
        write_atomically(path, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> LocalCluster | None:
        if not path.is_file():
            return None
        state = json.loads(path.read_text())
        return cls(
            state["address"], state["dashboard"], [NodeProcess(**node) for node in state["nodes"]]
        )


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our child, and it has exited (now reaped)
            return False
    except ChildProcessError:
        pass  # not a child of this process: ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ray_executable() -> str:
    ray = Path(sys.executable).with_name("ray")
    return str(ray) if ray.exists() else "ray"


def ensure_token() -> None:
    """Token auth needs the same token on every node and client: Ray's token file, made once."""
    if not os.environ.get("RAY_AUTH_TOKEN"):
        subprocess.run(
            [_ray_executable(), "get-auth-token", "--generate"], check=True, capture_output=True
        )


def _ray_start(args: list[str], name: str, cpus: int, log_dir: Path) -> NodeProcess:
    log = log_dir / f"{name}.log"
    command = [
        _ray_executable(),
        "start",
        "--block",
        "--disable-usage-stats",
        f"--num-cpus={cpus}",
        f"--object-store-memory={OBJECT_STORE_BYTES}",
        f"--resources={json.dumps({f'hpo-node-{name}': 1})}",
        *args,
    ]
    # The nodes run this Python environment, also for job drivers that call `python`, and
    # all of them (not only the head, as Ray's default for local clusters) use token auth.
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "RAY_AUTH_MODE": "token",
        "RAY_raylet_start_wait_time_s": "120",
    }
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
    return NodeProcess(name=name, pid=process.pid, cpus=cpus, log=str(log))


def _wait_for(condition, what: str, nodes: list[NodeProcess], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        dead = [n for n in nodes if not _alive(n.pid)]
        if dead or time.monotonic() > deadline:
            _stop(nodes)
            reason = f"node {dead[0].name} exited" if dead else f"no {what} after {timeout_s:.0f} s"
            log = (dead or nodes)[0].log
            raise UserError(f"local cluster did not start: {reason}; see {log}")
        time.sleep(0.5)


def _node_ip() -> str:
    from ray.util import get_node_ip_address

    return get_node_ip_address()


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def cluster_nodes(address: str) -> dict[str, str]:
    """Node name (head, 1, 2, ...) -> Ray node id of the alive nodes, asked from a separate
    process so that this one does not become a driver of the cluster."""
    script = (
        "import os, sys; os.environ['RAY_AUTH_MODE'] = 'token'; import json, ray; "
        "ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False); "
        "print('HPO_NODES=' + json.dumps({k[len('hpo-node-'):]: n['NodeID'] for n in ray.nodes() "
        "if n['Alive'] for k in n['Resources'] if k.startswith('hpo-node-')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, address], capture_output=True, text=True, timeout=120
    )
    found = [line for line in result.stdout.splitlines() if line.startswith("HPO_NODES=")]
    return json.loads(found[-1].split("=", 1)[1]) if found else {}


def cluster_up(
    workers: int,
    *,
    cpus_per_node: int,
    head_cpus: int,
    port: int | None,
    dashboard_port: int | None,
    state_file: Path,
    timeout_s: float = 180,
) -> LocalCluster:
    """Starts a head and `workers` worker nodes; returns once they have all joined."""
    state_file = user_path(state_file)
    existing = LocalCluster.load(state_file)
    if existing and any(_alive(n.pid) for n in existing.nodes):
        raise UserError(
            f"a local cluster is already up at {existing.address} "
            f"(state: {state_file}); stop it with `hpo cluster down` first"
        )
    port, dashboard_port = port or _free_port(), dashboard_port or _free_port()
    ensure_token()
    log_dir = state_file.parent / "local-cluster-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    head = _ray_start(
        [
            "--head",
            f"--port={port}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard_port}",
            f"--ray-client-server-port={_free_port()}",
        ],
        "head",
        head_cpus,
        log_dir,
    )
    nodes = [head]
    _wait_for(lambda: _port_open(port), "head node", nodes, timeout_s)
    time.sleep(2)  # the GCS answers before the head's raylet has registered
    # the address Ray itself gives this machine: its nodes register under that IP
    address = f"{_node_ip()}:{port}"
    cluster = LocalCluster(address, f"http://127.0.0.1:{dashboard_port}", nodes)
    cluster.save(state_file)  # from here on, `down` can stop what has started
    try:
        # One node at a time: raylets starting together on a small machine can miss their
        # registration deadline.
        for index in range(1, workers + 1):
            nodes.append(_ray_start([f"--address={address}"], str(index), cpus_per_node, log_dir))
            cluster.save(state_file)
            _wait_for(
                lambda index=index: len(cluster_nodes(address)) == index + 1,
                f"node {index}",
                nodes,
                timeout_s,
            )
        _wait_for(lambda: _port_open(dashboard_port), "dashboard", nodes, timeout_s)
    except BaseException:  # also Ctrl-C: leave nothing running behind
        _stop(nodes)
        state_file.unlink(missing_ok=True)
        _forget_address(address)
        raise
    return cluster


def _is_ray_start(pid: int) -> bool:
    """Whether `pid` is still a `ray start` process: after a reboot or a long time, a pid in the
    state file may belong to another program, which `down` must not signal."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(w.endswith(b"ray") for w in words[:3]) and b"start" in words


def _orphaned_ray_group(pgid: int) -> bool:
    """Whether Ray processes (a raylet, a GCS) are left in the process group of a `ray start`
    that has died: its session began with it, so the group id is its pid."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) == pgid and b"ray" in (entry / "cmdline").read_bytes():
                return True
        except OSError:  # gone meanwhile
            continue
    return False


def _stop(nodes: list[NodeProcess], timeout_s: float = 30) -> list[str]:
    """SIGTERM to each node's `ray start` (it stops its own Ray processes as it exits), then
    SIGKILL to the process groups of any that are still there, and of any whose `ray start`
    died before and left Ray processes behind. A pid that is now some other program is left
    alone."""
    ours = [node for node in nodes if _alive(node.pid) and _is_ray_start(node.pid)]
    orphaned = [n for n in nodes if not _alive(n.pid) and _orphaned_ray_group(n.pid)]
    for node in reversed(ours):  # workers first, the head last
        os.kill(node.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(_alive(n.pid) for n in ours) and time.monotonic() < deadline:
        time.sleep(0.2)
    for node in ours + orphaned:
        try:
            os.killpg(node.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return [node.name for node in reversed(ours)]


def cluster_down(state_file: Path) -> list[str]:
    """Stops the nodes that `cluster_up` recorded; returns the names of those that were up."""
    state_file = user_path(state_file)
    cluster = LocalCluster.load(state_file)
    if cluster is None:
        raise UserError(f"no local cluster recorded in {state_file}")
    stopped = _stop(cluster.nodes)
    state_file.unlink()
    _forget_address(cluster.address)
    return stopped


def _forget_address(address: str) -> None:
    """`ray start --head` records its address for `ray.init()` to find; `ray stop` deletes that
    record, and so must we, or a later `ray.init()` tries to join the stopped cluster."""
    record = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    if record.is_file() and record.read_text().strip() == address:
        record.unlink()
