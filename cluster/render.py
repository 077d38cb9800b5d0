"""Cluster configs generated from a sweep file (`hpo cluster render --target ...`), so that
they never drift from the code: KubeRay manifests (a RayCluster, a RayJob that runs the sweep,
a RayService that serves the sweep's live model) and Ray cluster-launcher YAMLs for AWS and GCP.

Every target has a CPU-only head that runs the driver and no trials (`num-cpus: 0`), and an
autoscaling group of GPU workers sized from the sweep: a trial holds `train.workers` workers of
one GPU each, and a worker node holds `gpus_per_node` GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from hpo.search.sweep import Sweep
from hpo.search.sweepfile import sweep_to_yaml

RAY_VERSION = "2.60.0"
TARGETS = ("kuberay", "aws", "gcp")
SHARED = "/mnt/shared"  # where every node mounts the shared storage (NFS, EFS, Filestore)
PROJECT_DIR = "~/hpo"  # where the cluster launcher copies this checkout on every node
AUTH_TOKEN = "~/.ray/auth_token"  # Ray's token file: `ray get-auth-token --generate` makes it


@dataclass(frozen=True)
class ClusterShape:
    """What the rendered configs need besides the sweep: the image and the worker nodes."""

    image: str = "hpo:latest"
    gpus_per_node: int = 1
    max_nodes: int = 8
    min_nodes: int = 0
    namespace: str = "default"


def _sweep_command(sweep_path: str, serve: bool) -> str:
    return f"hpo run {sweep_path} --no-keep-serving" + ("" if serve else " --no-serve")


def _secret(variable: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _container(
    name: str, image: str, resources: dict[str, Any], ports=(), serving: bool = False
) -> dict[str, Any]:
    """A Ray pod's container; `serving` pods get the API key from the Secret `hpo-api-key`."""
    env = [
        {"name": "RAY_AUTH_MODE", "value": "token"},
        _secret("RAY_AUTH_TOKEN", "hpo-ray-token", "auth_token"),
        {"name": "HPO_DATA", "value": f"{SHARED}/data"},
    ]
    if serving:
        env.append(_secret("HPO_API_KEY", "hpo-api-key", "api_key"))
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "env": env,
        "resources": {"limits": resources, "requests": resources},
        "volumeMounts": [
            {"name": "shared", "mountPath": SHARED},
            {"name": "sweep", "mountPath": "/etc/hpo"},
        ],
    }
    if ports:
        container["ports"] = [{"containerPort": port, "name": n} for n, port in ports]
    return container


def _ray_cluster_spec(sweep: Sweep, shape: ClusterShape, serving: bool = False) -> dict[str, Any]:
    volumes = [
        {"name": "shared", "persistentVolumeClaim": {"claimName": "hpo-shared"}},
        {"name": "sweep", "configMap": {"name": f"hpo-{sweep.name}-sweep"}},
    ]
    head = _container(
        "ray-head",
        shape.image,
        {"cpu": "4", "memory": "16Gi"},
        ports=(("gcs-server", 6379), ("dashboard", 8265), ("client", 10001), ("serve", 8000)),
        serving=serving,
    )
    worker_cpus = max(4, 4 * shape.gpus_per_node)
    worker = _container(
        "ray-worker",
        shape.image,
        {
            "cpu": str(worker_cpus),
            "memory": f"{8 * worker_cpus}Gi",
            "nvidia.com/gpu": str(shape.gpus_per_node),
        },
        serving=serving,
    )
    return {
        "rayVersion": RAY_VERSION,
        "enableInTreeAutoscaling": True,
        "headGroupSpec": {
            "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
            "template": {"spec": {"containers": [head], "volumes": volumes}},
        },
        "workerGroupSpecs": [
            {
                "groupName": "gpu-workers",
                "replicas": shape.min_nodes,
                "minReplicas": shape.min_nodes,
                "maxReplicas": shape.max_nodes,
                "rayStartParams": {},
                "template": {"spec": {"containers": [worker], "volumes": volumes}},
            }
        ],
    }


def kuberay(sweep: Sweep, sweep_yaml: str, shape: ClusterShape) -> list[dict[str, Any]]:
    """A ConfigMap with the sweep file, a RayCluster, a RayJob and a RayService."""
    metadata = {
        "namespace": shape.namespace,
        "labels": {"app.kubernetes.io/name": "hpo", "hpo/sweep": sweep.name},
    }
    serve_config = {
        "http_options": {"host": "0.0.0.0", "port": 8000},
        "applications": [
            {
                "name": sweep.name,
                "import_path": "hpo.serve.deploy:service_app",
                "route_prefix": "/",
                "args": {"storage": sweep.storage, "name": sweep.name},
            }
        ],
    }
    cluster_spec = _ray_cluster_spec(sweep, shape)
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"hpo-{sweep.name}-sweep", **metadata},
            "data": {"sweep.yaml": sweep_yaml},
        },
        {
            "apiVersion": "ray.io/v1",
            "kind": "RayCluster",
            "metadata": {"name": f"hpo-{sweep.name}", **metadata},
            "spec": cluster_spec,
        },
        {
            "apiVersion": "ray.io/v1",
            "kind": "RayJob",
            "metadata": {"name": f"hpo-{sweep.name}-sweep", **metadata},
            "spec": {
                "entrypoint": _sweep_command("/etc/hpo/sweep.yaml", serve=False),
                "shutdownAfterJobFinishes": True,
                "ttlSecondsAfterFinished": 600,
                "rayClusterSpec": cluster_spec,
            },
        },
        {
            "apiVersion": "ray.io/v1",
            "kind": "RayService",
            "metadata": {"name": f"hpo-{sweep.name}-serve", **metadata},
            "spec": {
                "serveConfigV2": yaml.safe_dump(serve_config, sort_keys=False),
                "rayClusterConfig": _ray_cluster_spec(sweep, shape, serving=True),
            },
        },
    ]


def _launcher(
    sweep: Sweep,
    shape: ClusterShape,
    provider: dict[str, Any],
    head_config: dict[str, Any],
    worker_config: dict[str, Any],
) -> dict[str, Any]:
    """A Ray cluster-launcher config (`ray up`); the provider-specific parts come in."""
    return {
        "cluster_name": f"hpo-{sweep.name}",
        "max_workers": shape.max_nodes,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 10,
        "provider": provider,
        "auth": {"ssh_user": "ubuntu"},
        "available_node_types": {
            "head": {
                "node_config": head_config,
                "resources": {"CPU": 0},
                "min_workers": 0,
                "max_workers": 0,
            },
            "gpu_worker": {
                "node_config": worker_config,
                "resources": {},
                "min_workers": shape.min_nodes,
                "max_workers": shape.max_nodes,
            },
        },
        "head_node_type": "head",
        # this checkout, and one Ray auth token for every node (made here beforehand)
        "file_mounts": {PROJECT_DIR: ".", AUTH_TOKEN: AUTH_TOKEN},
        "rsync_exclude": [".venv", "runs", ".git", "**/__pycache__"],
        "setup_commands": [
            f"pip install -q 'ray[default,tune,train,serve]=={RAY_VERSION}' -e {PROJECT_DIR}",
        ],
        "head_start_ray_commands": [
            "ray stop",
            "ulimit -n 65536; RAY_AUTH_MODE=token ray start --head --port=6379 --num-cpus=0 "
            "--dashboard-host=127.0.0.1 --autoscaling-config=~/ray_bootstrap_config.yaml",
        ],
        "worker_start_ray_commands": [
            "ray stop",
            "ulimit -n 65536; RAY_AUTH_MODE=token ray start --address=$RAY_HEAD_IP:6379",
        ],
    }


def aws(sweep: Sweep, shape: ClusterShape, region: str = "us-west-2") -> dict[str, Any]:
    gpu_instances = {1: "g5.2xlarge", 4: "g5.12xlarge", 8: "g5.48xlarge"}
    return _launcher(
        sweep,
        shape,
        provider={"type": "aws", "region": region, "cache_stopped_nodes": False},
        head_config={
            "InstanceType": "m5.2xlarge",
            "BlockDeviceMappings": [
                {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 200, "VolumeType": "gp3"}}
            ],
        },
        worker_config={
            "InstanceType": gpu_instances.get(shape.gpus_per_node, "g5.12xlarge"),
            "BlockDeviceMappings": [
                {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 200, "VolumeType": "gp3"}}
            ],
            "InstanceMarketOptions": {"MarketType": "spot"},
        },
    )


def gcp(
    sweep: Sweep, shape: ClusterShape, region: str = "us-central1", project_id: str = "YOUR-PROJECT"
) -> dict[str, Any]:
    disk = [
        {
            "boot": True,
            "autoDelete": True,
            "type": "PERSISTENT",
            "initializeParams": {
                "diskSizeGb": 200,
                "sourceImage": "projects/deeplearning-platform-release/global/images/family/"
                "common-cu124-ubuntu-2204-py310",
            },
        }
    ]
    return _launcher(
        sweep,
        shape,
        provider={
            "type": "gcp",
            "region": region,
            "availability_zone": f"{region}-a",
            "project_id": project_id,
        },
        head_config={"machineType": "n2-standard-8", "disks": disk},
        worker_config={
            "machineType": "g2-standard-8" if shape.gpus_per_node == 1 else "g2-standard-48",
            "guestAccelerators": [
                {"acceleratorType": "nvidia-l4", "acceleratorCount": shape.gpus_per_node}
            ],
            "scheduling": [{"onHostMaintenance": "TERMINATE"}],
            "disks": disk,
        },
    )


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the sweep file in the ConfigMap) as readable `|` blocks."""


_Dumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar(
        "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None
    ),
)


def for_cluster(sweep: Sweep) -> Sweep:
    """The sweep with a relative storage moved to the shared file system of the cluster."""
    if "://" in sweep.storage or sweep.storage.startswith("/"):
        return sweep
    return sweep.model_copy(update={"storage": f"{SHARED}/runs"})


def render(sweep: Sweep, target: str, shape: ClusterShape) -> str:
    """The config of `target` as YAML text (KubeRay: several documents)."""
    sweep = for_cluster(sweep)
    if target == "kuberay":
        documents = kuberay(sweep, sweep_to_yaml(sweep), shape)
        return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False)
    config = aws(sweep, shape) if target == "aws" else gcp(sweep, shape)
    header = (
        f"# Ray cluster-launcher config for sweep {sweep.name}. First make the cluster's one Ray\n"
        f"# auth token here (`ray get-auth-token --generate`; copied to every node from\n"
        f"# {AUTH_TOKEN}), then `ray up` this file. The dashboard listens on the head's\n"
        f"# 127.0.0.1 only: `ray dashboard` this file, then\n"
        f"# `hpo submit SWEEP --address http://127.0.0.1:8265`.\n"
    )
    return header + yaml.dump(config, Dumper=_Dumper, sort_keys=False)
