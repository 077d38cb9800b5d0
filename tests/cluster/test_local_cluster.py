"""A real multi-node Ray cluster on this machine (`hpo cluster up`): a head without CPUs and two
one-CPU worker nodes. A sweep driven against it spreads its trials over both workers, a sweep
submitted as a Ray Job finishes with readable results, and `hpo cluster down` stops exactly the
processes that `up` started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest

from hpo.cluster.local import (
    LocalCluster,
    NodeProcess,
    _alive,
    cluster_down,
    cluster_nodes,
    cluster_up,
)
from tests.helpers import result_rows, run_hpo, start_hpo, tiny_sweep, wait_for, write_yaml

pytestmark = pytest.mark.usefixtures("data_dir")


def hpo(*args: str) -> subprocess.CompletedProcess:
    return run_hpo(*args, env={"RAY_AUTH_MODE": "token"})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("cluster") / "state.json"
    started = cluster_up(
        2, cpus_per_node=1, head_cpus=0, port=None, dashboard_port=None, state_file=state
    )
    yield started, state
    if state.exists():
        cluster_down(state)
    assert not any(_alive(node.pid) for node in started.nodes)


def sweep_file(tiny_model: str, folder: Path) -> Path:
    tree = tiny_sweep(
        tiny_model,
        folder / "runs",
        search={"algorithm": "random", "num_samples": 4, "max_concurrent": 2},
    )
    return write_yaml(folder / "sweep.yaml", tree)


def test_trials_spread_over_the_worker_nodes(cluster, tiny_model: str, tmp_path: Path) -> None:
    started, _ = cluster
    nodes = cluster_nodes(started.address)
    assert set(nodes) == {"head", "1", "2"}

    result = hpo(
        "run", str(sweep_file(tiny_model, tmp_path)), "--address", started.address, "--no-serve"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    trials = pd.read_csv(tmp_path / "runs" / "tiny" / "trials.csv")
    assert set(trials.state) == {"completed"}
    used = set(trials.node)
    print("trials ran on nodes:", dict(trials.node.value_counts()))
    assert used <= {nodes["1"], nodes["2"]}  # the head has no CPUs for trials
    assert len(used) == 2


def sweep_on_cluster(
    address: str, tiny_model: str, tmp_path: Path, *, trials: int, **train: object
) -> pd.DataFrame:
    """`hpo run --address` of a tiny sweep of `trials` trials at once with these `train`
    settings; its trials.csv."""
    search = {"algorithm": "random", "num_samples": trials, "max_concurrent": trials}
    tree = tiny_sweep(tiny_model, tmp_path / "runs", search=search, train=train)
    result = hpo(
        "run", str(write_yaml(tmp_path / "sweep.yaml", tree)), "--address", address, "--no-serve"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return pd.read_csv(tmp_path / "runs" / "tiny" / "trials.csv")


def test_resources_per_worker_pin_trials_to_a_node(
    cluster, tiny_model: str, tmp_path: Path
) -> None:
    """A custom resource that only node 2 has: every trial runs there."""
    started, _ = cluster
    trials = sweep_on_cluster(
        started.address,
        tiny_model,
        tmp_path,
        trials=2,
        evals_per_epoch=2,
        cpus_per_worker=1,
        resources_per_worker={"hpo-node-2": 0.5},
    )
    assert set(trials.node) == {cluster_nodes(started.address)["2"]}


def test_a_ddp_trial_spreads_its_workers_over_both_nodes(
    cluster, tiny_model: str, tmp_path: Path
) -> None:
    """Two Ray Train workers (DDP over gloo) with the spread strategy: one on each worker
    node. Half a CPU each, as the trial itself holds a sliver of one node's CPU."""
    started, _ = cluster
    trials = sweep_on_cluster(
        started.address,
        tiny_model,
        tmp_path,
        trials=1,
        evals_per_epoch=1,
        cpus_per_worker=1,
        workers=2,
        launcher="ray_train",
        placement_strategy="spread",
        resources_per_worker={"CPU": 0.5},
    )
    assert list(trials.state) == ["completed"]
    spanned = trials.node[0].split(",")
    print("the DDP trial's workers ran on nodes:", spanned)
    nodes = cluster_nodes(started.address)
    assert sorted(spanned) == sorted([nodes["1"], nodes["2"]])


def test_a_submitted_sweep_finishes_as_a_ray_job(cluster, tiny_model: str, tmp_path: Path) -> None:
    started, _ = cluster
    result = hpo(
        "submit",
        str(sweep_file(tiny_model, tmp_path)),
        "--address",
        started.dashboard,
        "--no-serve",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    job_id = output.split("submitted job ", 1)[1].split()[0]
    assert f"job {job_id}: SUCCEEDED" in output
    summary = json.loads((tmp_path / "runs" / "tiny" / "summary.json").read_text())
    assert summary["num_trials"] == 4 and summary["best"]["checkpoint"]

    listed = hpo("jobs", "list", "--address", started.dashboard)
    assert job_id in listed.stdout and "SUCCEEDED" in listed.stdout
    status = hpo("jobs", "status", job_id, "--address", started.dashboard)
    assert json.loads(status.stdout)["status"] == "SUCCEEDED"
    print("job", job_id, json.loads(status.stdout)["status"])


def test_jobs_use_this_machines_token_and_say_when_it_is_missing_or_wrong(
    cluster, tmp_path: Path
) -> None:
    """Without RAY_AUTH_MODE the token file is used; a wrong or missing token is one line
    that names where the token goes, never a traceback."""
    started, _ = cluster
    environment = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    listing = ["jobs", "list", "--address", started.dashboard]
    with mock.patch.dict(os.environ, environment, clear=True):
        assert run_hpo(*listing).returncode == 0
        (tmp_path / "wrong").write_text("not-the-token-0123456789\n")
        wrong = run_hpo(*listing, env={"RAY_AUTH_TOKEN_PATH": str(tmp_path / "wrong")})
        missing = run_hpo(*listing, env={"HOME": str(tmp_path)})
    assert wrong.returncode == 2 and "its token is not the cluster's" in wrong.stderr
    assert missing.returncode == 2 and "no token found" in missing.stderr
    for done in (wrong, missing):
        assert "~/.ray/auth_token" in done.stderr and "Traceback" not in done.stderr
    unknown = hpo("jobs", "status", "no-such-job", "--address", started.dashboard)
    assert unknown.returncode == 2 and "no such job" in unknown.stderr


def test_cluster_down_stops_exactly_what_up_started(cluster) -> None:
    started, state = cluster
    assert LocalCluster.load(state) == started
    result = hpo("cluster", "down", "--state", str(state))
    assert result.returncode == 0, result.stderr
    assert "stopped 3 node(s)" in result.stdout
    assert not any(_alive(node.pid) for node in started.nodes)
    assert not state.exists()
    record = Path("/tmp/ray/ray_current_cluster")  # else ray.init() would join a dead cluster
    assert not record.exists() or record.read_text().strip() != started.address


def test_cluster_down_leaves_a_pid_that_is_no_longer_ray_alone(tmp_path: Path) -> None:
    """A state file outliving its cluster (a reboot, reused pids): `down` signals nothing that
    is not a `ray start`."""
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        state = tmp_path / "state.json"
        LocalCluster(
            "127.0.0.1:1", "http://127.0.0.1:2", [NodeProcess("head", bystander.pid, 0, "log")]
        ).save(state)
        assert cluster_down(state) == []
        assert bystander.poll() is None  # still running
    finally:
        bystander.kill()
        bystander.wait()


def test_sigterm_while_a_cluster_starts_leaves_nothing_running(tmp_path: Path) -> None:
    """`hpo cluster up` stopped with SIGTERM (as Ctrl-C) once its head is up: it stops the
    nodes it started, forgets the state file, and exits with 130 without a stack dump. Even
    when started as a shell's background job, which ignores SIGINT."""
    state = tmp_path / "state.json"
    process = start_hpo(
        "cluster",
        "up",
        "--workers",
        "2",
        "--state",
        str(state),
        env={"RAY_AUTH_MODE": "token"},
        sigint_ignored=True,
    )
    started = wait_for(lambda: state.is_file() and LocalCluster.load(state), "the head node")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert not state.exists()
    assert not any(_alive(node.pid) for node in started.nodes)
    assert not any(mark in stderr for mark in ("Traceback", "Aborted", "core dumped")), stderr


@pytest.mark.faults
def test_a_lost_node_loses_no_trial(tiny_model: str, tmp_path: Path) -> None:
    """Two trials at once on two worker nodes; node 2 is killed (its raylet and workers,
    SIGKILL) after both have reported: its trial is retried on node 1 from its checkpoint
    (search.max_failures), and both finish."""
    state = tmp_path / "state.json"
    started = cluster_up(
        2, cpus_per_node=1, head_cpus=0, port=None, dashboard_port=None, state_file=state
    )
    try:
        nodes = cluster_nodes(started.address)
        tree = tiny_sweep(
            tiny_model,
            tmp_path / "runs",
            search={
                "algorithm": "random",
                "num_samples": 2,
                "max_concurrent": 2,
                "max_failures": 2,
            },
            scheduler={"name": "fifo", "max_epochs": 4},
            train={"evals_per_epoch": 4, "cpus_per_worker": 1},
        )
        tree["data"]["max_train_samples"] = 4096  # seconds per epoch: still training when hit
        run_dir = tmp_path / "runs" / "tiny"
        process = start_hpo(
            "run",
            str(write_yaml(tmp_path / "sweep.yaml", tree)),
            "--address",
            started.address,
            "--no-serve",
            env={"RAY_AUTH_MODE": "token"},
        )
        wait_for(lambda: len([r for r in result_rows(run_dir).values() if r]) == 2, "2 trials")
        on_node_2 = [
            t for t, rows in result_rows(run_dir).items() if rows[-1]["node_id"] == nodes["2"]
        ]
        (node_2,) = [node for node in started.nodes if node.name == "2"]
        os.killpg(node_2.pid, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=900)
        assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
        trials = pd.read_csv(run_dir / "trials.csv")
        assert list(trials.state) == ["completed", "completed"]
        assert set(trials.node) == {nodes["1"]}, (nodes, list(trials.node))  # the survivor
        for trial in on_node_2:
            epochs = [row["epoch"] for row in result_rows(run_dir)[trial]]
            assert epochs.count(0.25) == 1 and epochs[-1] == 4.0  # from its checkpoint
        print(f"killed node 2 under {len(on_node_2)} trial(s); none lost")
    finally:
        cluster_down(state)
