"""`hpo cluster render`: KubeRay manifests and cluster-launcher YAMLs generated from a sweep file
parse, carry what Ray and KubeRay require, and stay in step with the code they name."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import pytest
import yaml

from hpo.cluster.render import SHARED, ClusterShape, render
from hpo.search.sweepfile import load_sweep
from tests.conftest import REPO

SWEEP = REPO / "examples" / "sst2.yaml"


@pytest.fixture
def sweep(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HPO_DATA", f"{SHARED}/data")
    return load_sweep(SWEEP)


def kuberay_documents(sweep, **shape) -> dict[str, dict]:
    documents = list(yaml.safe_load_all(render(sweep, "kuberay", ClusterShape(**shape))))
    return {document["kind"]: document for document in documents}


def test_kuberay_manifests_have_what_kuberay_requires(sweep) -> None:
    documents = kuberay_documents(
        sweep, image="registry.example/hpo:1", gpus_per_node=4, max_nodes=16
    )
    assert set(documents) == {"ConfigMap", "RayCluster", "RayJob", "RayService"}
    for kind in ("RayCluster", "RayJob", "RayService"):
        assert documents[kind]["apiVersion"] == "ray.io/v1"
        assert documents[kind]["metadata"]["name"].startswith("hpo-sst2")
    specs = [
        documents["RayCluster"]["spec"],
        documents["RayJob"]["spec"]["rayClusterSpec"],
        documents["RayService"]["spec"]["rayClusterConfig"],
    ]
    for spec in specs:
        head = spec["headGroupSpec"]
        assert head["rayStartParams"]["num-cpus"] == "0"  # the head runs drivers, not trials
        head_container = head["template"]["spec"]["containers"][0]
        assert head_container["image"] == "registry.example/hpo:1"
        assert {p["containerPort"] for p in head_container["ports"]} >= {6379, 8265, 8000}
        (group,) = spec["workerGroupSpecs"]
        assert group["maxReplicas"] == 16 and group["minReplicas"] == 0
        worker = group["template"]["spec"]["containers"][0]
        assert worker["resources"]["limits"]["nvidia.com/gpu"] == "4"
        assert worker["image"] == "registry.example/hpo:1"
        env = {e["name"]: e for e in worker["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]


def test_the_rayjob_runs_the_sweep_file_from_its_configmap(sweep) -> None:
    documents = kuberay_documents(sweep)
    entrypoint = documents["RayJob"]["spec"]["entrypoint"]
    assert entrypoint.startswith("hpo run /etc/hpo/sweep.yaml")
    shipped = yaml.safe_load(documents["ConfigMap"]["data"]["sweep.yaml"])
    assert shipped["data"]["train"][0] == f"{SHARED}/data/sst2/train.csv"
    assert shipped["storage"] == f"{SHARED}/runs"  # ./runs moves to the shared file system
    assert shipped["search"] == yaml.safe_load(Path(SWEEP).read_text())["search"] | {
        "time_budget_s": None,
        "n_startup_trials": None,
        "max_failures": 0,
    }


def test_the_rayservice_imports_a_builder_that_exists(sweep) -> None:
    serve_config = yaml.safe_load(kuberay_documents(sweep)["RayService"]["spec"]["serveConfigV2"])
    (application,) = serve_config["applications"]
    module, name = application["import_path"].split(":")
    assert callable(getattr(importlib.import_module(module), name))
    assert application["args"] == {"storage": f"{SHARED}/runs", "name": "sst2"}


@pytest.mark.parametrize("target", ["aws", "gcp"])
def test_launcher_configs_validate_against_rays_schema(sweep, target: str) -> None:
    import jsonschema
    import ray

    schema_path = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"
    config = yaml.safe_load(render(sweep, target, ClusterShape(gpus_per_node=4, max_nodes=8)))
    jsonschema.validate(config, json.loads(schema_path.read_text()))
    assert config["provider"]["type"] == target
    assert config["head_node_type"] in config["available_node_types"]
    assert config["available_node_types"]["head"]["resources"] == {"CPU": 0}
    assert config["available_node_types"]["gpu_worker"]["max_workers"] == 8
    assert any("ray start --head" in c for c in config["head_start_ray_commands"])
    assert any("pip install" in c for c in config["setup_commands"])


def test_only_the_rayservice_gets_the_api_key_and_from_a_secret(sweep) -> None:
    documents = kuberay_documents(sweep)

    def envs(spec: dict) -> list[dict]:
        pods = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
        return [{e["name"]: e for e in p["template"]["spec"]["containers"][0]["env"]} for p in pods]

    for env in envs(documents["RayService"]["spec"]["rayClusterConfig"]):
        key = env["HPO_API_KEY"]["valueFrom"]["secretKeyRef"]
        assert (
            key == {"name": "hpo-api-key", "key": "api_key"} and "value" not in env["HPO_API_KEY"]
        )
    for env in envs(documents["RayCluster"]["spec"]) + envs(
        documents["RayJob"]["spec"]["rayClusterSpec"]
    ):
        assert "HPO_API_KEY" not in env


@pytest.mark.parametrize("target", ["aws", "gcp"])
def test_launcher_nodes_share_one_token_and_hide_the_dashboard(sweep, target: str) -> None:
    text = render(sweep, target, ClusterShape())
    config = yaml.safe_load(text)
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert not any("--generate" in c for c in config["setup_commands"])  # one token, not one each
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head
    assert "ray get-auth-token --generate" in text.split("\n", 4)[1] + text.split("\n", 4)[2]


def test_hpo_cluster_render_writes_a_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "cluster.yaml"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpo.cli",
            "cluster",
            "render",
            str(SWEEP),
            "--target",
            "gcp",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(out.read_text())["provider"]["type"] == "gcp"
    bad = subprocess.run(
        [sys.executable, "-m", "hpo.cli", "cluster", "render", str(SWEEP), "--target", "azure"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert bad.returncode == 2 and "choose one of kuberay, aws, gcp" in bad.stderr


def test_every_yaml_file_in_cluster_parses() -> None:
    files = sorted((REPO / "cluster").glob("*.yaml"))
    assert files
    for path in files:
        for document in yaml.safe_load_all(path.read_text()):
            assert document["apiVersion"] and document["kind"], path


def test_the_image_copies_every_folder_of_the_package() -> None:
    """The Dockerfile copies each folder that pyproject.toml maps to a part of `hpo`."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    folders = set(project["tool"]["setuptools"]["package-dir"].values())
    dockerfile = (REPO / "cluster" / "Dockerfile").read_text().splitlines()
    copied = {line.split()[2] for line in dockerfile if line.startswith("COPY --chown")}
    assert folders <= copied
