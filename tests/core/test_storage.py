"""Runs in a bucket: `storage: s3://...` against a local S3 server (moto's server mode on
127.0.0.1, started here and stopped by pid). A sweep writes its checkpoints, results and
TensorBoard logs to the bucket, resumes from it after Ctrl-C on a machine with an empty cache,
and `hpo serve` deploys its best checkpoint from it. Every `hpo` runs as a subprocess with its own
embedded Ray, which inherits the S3 settings from the environment as a cluster's nodes would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpo.core.errors import UserError
from hpo.core.storage import StorageDir, as_location, check_bucket, local_checkpoint, normalize
from tests.helpers import (
    bucket_objects,
    free_port,
    kill_tree,
    local_s3_server,
    run_hpo,
    s3_filesystem,
    start_hpo,
    tiny_sweep,
    write_yaml,
)

pytestmark = pytest.mark.usefixtures("data_dir")

BUCKET = "hpo-test"


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    with local_s3_server(BUCKET) as env:
        yield env


@pytest.fixture
def s3_env(s3: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The S3 settings in this process too (for the storage helpers)."""
    for key, value in s3.items():
        monkeypatch.setenv(key, value)
    return s3


def objects(prefix: str, env: dict[str, str]) -> dict[str, int]:
    return bucket_objects(env, BUCKET, prefix)


def read_object(key: str, env: dict[str, str]) -> bytes:
    with s3_filesystem(env["AWS_ENDPOINT_URL"]).open_input_stream(f"{BUCKET}/{key}") as handle:
        return handle.read()


def hpo(*args: str, env: dict[str, str], cache: Path) -> subprocess.CompletedProcess:
    return run_hpo(*args, env={**env, "HPO_CACHE": str(cache)})


# --- the storage helpers ---------------------------------------------------------------------


def test_locations_and_user_errors(tmp_path: Path, s3_env: dict[str, str]) -> None:
    assert normalize("s3://b/runs/") == "s3://b/runs"
    assert normalize(tmp_path / "a" / ".." / "b") == str(tmp_path / "b")
    with pytest.raises(UserError, match="AWS_ENDPOINT_URL"):
        normalize("s3://b/runs?endpoint_override=localhost:9000")
    with pytest.raises(UserError, match="the bucket 'no-such-bucket' does not exist"):
        check_bucket("s3://no-such-bucket/runs")
    check_bucket(f"s3://{BUCKET}/runs")

    import pyarrow.fs as pafs

    assert as_location(pafs.LocalFileSystem(), "/x/checkpoint_000001") == "/x/checkpoint_000001"
    fs, path = pafs.FileSystem.from_uri(f"s3://{BUCKET}/runs/x")
    assert as_location(fs, path) == f"s3://{BUCKET}/runs/x"


def test_push_uploads_named_files_and_pull_mirrors_the_bucket(
    tmp_path: Path, s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPO_CACHE", str(tmp_path / "cache"))
    folder = StorageDir.at(f"s3://{BUCKET}/helpers/run")
    assert folder.remote and folder.name == "run" and folder.parent.location.endswith("helpers")
    folder.start_fresh()
    (folder.local / "summary.json").write_text("{}")
    (folder.local / "logs").mkdir()
    (folder.local / "logs" / "old").write_text("old")
    folder.push("summary.json", "logs", "missing.txt")
    assert objects("helpers/run", s3_env) == {"summary.json": 2, "logs/old": 3}

    since = time.time()
    (folder.local / "logs" / "new").write_text("new!")
    stale = folder.local / "logs" / "old"
    stale.write_text("changed")
    os.utime(stale, (since - 60, since - 60))  # dated before `since`: not uploaded again
    (folder.local / "scratch").write_text("never pushed")
    folder.push("logs", since=since)
    assert objects("helpers/run", s3_env) == {"summary.json": 2, "logs/old": 3, "logs/new": 4}

    (folder.local / "logs" / "being-written").write_text("a sweep here writes this")
    folder.pull("logs")  # on the machine that writes: folders only gain what they lack
    assert (folder.local / "logs" / "being-written").is_file()

    monkeypatch.setenv("HPO_CACHE", str(tmp_path / "other-machine"))
    assert not folder.local.exists()
    folder.pull("summary.json", "logs", "trials.csv")
    assert (folder.local / "summary.json").read_text() == "{}"
    assert sorted(p.name for p in (folder.local / "logs").iterdir()) == ["new", "old"]
    assert not (folder.local / "trials.csv").exists()
    with pytest.raises(UserError, match="no checkpoint there"):
        local_checkpoint(f"s3://{BUCKET}/helpers/run/checkpoint_9")

    folder.child("checkpoint_1").start_fresh()
    (folder.local / "checkpoint_1" / "training_state.pt").write_text("x")
    folder.child("checkpoint_1").push("training_state.pt")
    folder.remove_files("training_state.pt")
    assert "checkpoint_1/training_state.pt" not in objects("helpers/run", s3_env)


# --- a sweep in the bucket -------------------------------------------------------------------


@pytest.fixture(scope="module")
def bucket_run(s3: dict[str, str], tiny_model: str, tmp_path_factory) -> dict:
    """`hpo run` to s3://, Ctrl-C after the first evaluation, then `hpo resume` from another
    cache (as on another machine) to the end. Trials run in Ray Train, whose runs (and their
    checkpoints) live in the bucket too and resume from it."""
    folder = tmp_path_factory.mktemp("bucket-run")
    tree = tiny_sweep(
        tiny_model,
        f"s3://{BUCKET}/runs",
        search={"algorithm": "random", "num_samples": 2, "max_concurrent": 1},
        train={"evals_per_epoch": 2, "cpus_per_worker": 1, "launcher": "ray_train"},
        serve={"port": free_port(), "smoke_test": ["a fine film", "a dull film"]},
    )
    sweep = write_yaml(folder / "sweep.yaml", tree)
    process = start_hpo(
        "run", str(sweep), "--no-serve", env={**s3, "HPO_CACHE": str(folder / "cache-1")}
    )
    for line in process.stdout:  # ConsoleProgress prints a line per evaluation
        if " epoch 0.50 " in line:
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    interrupted = {
        "returncode": process.returncode,
        "stderr": stderr,
        "objects": objects("runs/tiny", s3),
    }
    resumed = hpo(
        "resume", f"s3://{BUCKET}/runs/tiny", "--no-serve", env=s3, cache=folder / "cache-2"
    )
    return {"folder": folder, "interrupted": interrupted, "resumed": resumed}


def test_interrupted_sweep_leaves_its_state_in_the_bucket(bucket_run: dict) -> None:
    interrupted = bucket_run["interrupted"]
    assert interrupted["returncode"] == 130, interrupted["stderr"]
    assert f"hpo resume s3://{BUCKET}/runs/tiny" in interrupted["stderr"]
    keys = interrupted["objects"]
    assert "sweep.yaml" in keys and "tuner.pkl" in keys
    assert any(k.startswith("experiment_state-") for k in keys)
    assert "summary.json" not in keys


def test_resumed_sweep_writes_results_checkpoints_and_logs_to_the_bucket(
    bucket_run: dict, s3: dict[str, str]
) -> None:
    resumed = bucket_run["resumed"]
    assert resumed.returncode == 0, resumed.stderr
    keys = objects("runs/tiny", s3)
    print(f"objects in s3://{BUCKET}/runs/tiny/:")
    for key, size in sorted(keys.items()):
        print(f"{size:>10,}  {key}")
    summary = json.loads(read_object("runs/tiny/summary.json", s3))
    assert summary["num_trials"] == 2 and summary["trial_states"] == {"completed": 2}
    assert summary["run_dir"] == f"s3://{BUCKET}/runs/tiny"
    assert summary["launcher"] == "ray_train"
    # Ray Train reports checkpoint paths without the scheme; the summary has it back
    prefix = f"s3://{BUCKET}/runs/tiny/train_runs/"
    best = summary["best"]["checkpoint"]
    assert best.startswith(prefix)
    assert {
        f"train_runs/{best[len(prefix) :]}/{name}"
        for name in ("model.safetensors", "config.json", "tokenizer.json")
    } <= set(keys)
    assert {"trials.csv", "trials.json", "curve.csv", "sweep.yaml"} <= set(keys)
    # Tune restarts the interrupted trial afresh (it has no Tune checkpoint) and Ray Train
    # resumes its run from the bucket: the trial reports only what was left, the end of its
    # epoch (once); trained from scratch, it would report twice again.
    trials = json.loads(read_object("runs/tiny/trials.json", s3))
    assert [(t["epochs"], t["reports"]) for t in trials] == [(1.0, 1), (1.0, 2)]
    trial_logs = {k.split("/")[2] for k in keys if k.startswith("tensorboard/trials/")}
    assert len(trial_logs) == 2  # one TensorBoard run per trial, before and after the resume
    assert any(k.startswith("tensorboard/search/events.out.tfevents") for k in keys)


def test_status_and_best_read_the_bucket(bucket_run: dict, s3: dict[str, str]) -> None:
    cache = bucket_run["folder"] / "cache-3"
    best = hpo("best", f"s3://{BUCKET}/runs/tiny", "--json", env=s3, cache=cache)
    assert best.returncode == 0, best.stderr
    summary = json.loads(read_object("runs/tiny/summary.json", s3))
    assert json.loads(best.stdout) == summary["best"]
    status = hpo("status", f"s3://{BUCKET}/runs/tiny", "--no-watch", env=s3, cache=cache)
    assert status.returncode == 0, status.stderr
    assert "2/2 trials (2 completed)" in status.stdout and "finished" in status.stdout


def test_hpo_serve_deploys_from_the_bucket(bucket_run: dict, s3: dict[str, str]) -> None:
    """`hpo serve` on a machine with an empty cache downloads the best checkpoint (without its
    optimizer state), gates it, serves it, and records the promotion in the bucket."""
    cache = bucket_run["folder"] / "cache-4"
    served = hpo("serve", f"s3://{BUCKET}/runs/tiny", "--no-keep-serving", env=s3, cache=cache)
    assert served.returncode == 0, served.stderr
    assert "gate: promoted" in served.stdout
    assert "'a fine film' -> " in served.stdout and "'a dull film' -> " in served.stdout
    assert len(list((cache / "checkpoints").rglob("model.safetensors"))) == 1
    assert not list(cache.rglob("training_state.pt"))  # serving never needs it
    best = json.loads(read_object("runs/tiny/summary.json", s3))["best"]["checkpoint"]
    ledger = [
        json.loads(line) for line in read_object("runs/promotions.jsonl", s3).decode().splitlines()
    ]
    assert [(e["decision"], e["checkpoint"]) for e in ledger] == [("promoted", best)]
    assert "api_key" not in objects("runs", s3)  # the key never goes to the bucket


def test_a_bucket_key_cannot_lead_out_of_its_download_folder(tmp_path: Path) -> None:
    from hpo.core.storage import inside

    assert inside(tmp_path, "checkpoint/model.safetensors", "s3://b/c") == (
        tmp_path / "checkpoint" / "model.safetensors"
    )
    for key in ("../outside", "a/../../outside", "/etc/passwd"):
        with pytest.raises(UserError, match="leads out of"):
            inside(tmp_path, key, "s3://b/c")


@pytest.mark.faults
def test_a_killed_driver_of_a_bucket_run_resumes_from_the_bucket(
    s3: dict[str, str], tiny_model: str, tmp_path: Path
) -> None:
    """`hpo run` to s3:// SIGKILLed with its whole Ray after its first trial ended and its
    second reported: `hpo resume` from an empty cache (another machine) keeps the first
    trial, continues the second, and each is in the results once."""
    tree = tiny_sweep(
        tiny_model,
        f"s3://{BUCKET}/killed",
        search={"algorithm": "random", "num_samples": 3, "max_concurrent": 1},
        scheduler={"name": "fifo", "max_epochs": 2},
    )
    tree["data"]["max_train_samples"] = 1024
    sweep = write_yaml(tmp_path / "sweep.yaml", tree)
    process = start_hpo(
        "run", str(sweep), "--no-serve", env={**s3, "HPO_CACHE": str(tmp_path / "cache-1")}
    )
    started = set()
    for line in process.stdout:
        if " started " in line:
            started.add(line.split()[0])
        if len(started) == 2 and " epoch 0.50 " in line:
            break
    kill_tree(process.pid)
    process.communicate(timeout=60)
    in_bucket = objects("killed/tiny", s3)
    assert "sweep.yaml" in in_bucket and "summary.json" not in in_bucket  # killed mid-sweep

    resumed = hpo(
        "resume", f"s3://{BUCKET}/killed/tiny", "--no-serve", env=s3, cache=tmp_path / "cache-2"
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    summary = json.loads(read_object("killed/tiny/summary.json", s3))
    assert summary["num_trials"] == 3 and summary["trial_states"] == {"completed": 3}
    trials = read_object("killed/tiny/trials.csv", s3).decode().splitlines()[1:]
    assert len({row.split(",")[0] for row in trials}) == 3
