"""The sweep file's `serve:` section: how the best model is deployed, batched, gated and
protected."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from hpo.core.config import StrictModel, rename_key


class GateConfig(StrictModel):
    """The promotion gate: a candidate replaces the live model of its sweep name only when its
    metric on `data.test` is not worse than the live model's by more than `tolerance`."""

    tolerance: float = Field(
        default=0.0, ge=0, description="How much worse (in the sweep's metric) may a candidate be."
    )


class SelectConfig(StrictModel):
    """Which point of a multi-objective sweep's Pareto front (`metric: [accuracy, latency_ms]`)
    is deployed; without it, the most accurate. Give one rule."""

    fastest_within: float | None = Field(
        default=None,
        ge=0,
        description="Deploy the fastest trial (latency_ms) whose metric is within this of the "
        "best trial's: 0.01 is one accuracy point.",
    )
    max_latency_ms: float | None = Field(
        default=None,
        gt=0,
        description="Deploy the best trial whose latency_ms is at most this; the gate refuses "
        "a candidate that serves slower on its own machine.",
    )

    @model_validator(mode="after")
    def _one_rule(self) -> SelectConfig:
        if (self.fastest_within is None) == (self.max_latency_ms is None):
            raise ValueError("give one of fastest_within and max_latency_ms")
        return self


class ServeConfig(StrictModel):
    """The `serve:` section: how the best model is deployed, batched, gated and protected."""

    enabled: bool = Field(default=True, description="Deploy the best model when the sweep ends.")
    host: str = Field(default="127.0.0.1", description="Address the service listens on.")
    port: int = Field(default=8000, ge=1, le=65535)
    ingress: Literal["auto", "haproxy", "proxy"] = Field(
        default="auto",
        description="What receives HTTP requests on host:port: haproxy (Ray Serve's HAProxy "
        "mode: HAProxy passes each connection to a replica, which serves HTTP itself; ~3.2x the "
        "requests/s of the proxy on 2 cores; ray[serve] ships HAProxy on Linux) or proxy (Ray "
        "Serve's Python HTTP proxy, which every request passes through). auto: haproxy where "
        "HAProxy is installed. Applies where hpo starts Ray itself; a cluster's Serve ingress "
        "is chosen where the cluster starts (RAY_SERVE_ENABLE_HA_PROXY=1).",
    )
    replicas: int = Field(default=1, ge=1)
    cpus_per_replica: float = Field(default=1.0, gt=0)
    gpus_per_replica: float = Field(default=0.0, ge=0)
    max_batch_size: int = Field(
        default=32, ge=1, description="Texts one forward pass may hold (@serve.batch)."
    )
    batch_wait_timeout_s: float = Field(
        default=0.01,
        ge=0,
        description="How long a forward pass waits for more texts, when the one before it "
        "held more than one (a lone client never waits).",
    )
    max_inputs_per_request: int = Field(
        default=64, ge=1, description="Most texts (or pairs) one /predict request may send."
    )
    max_text_chars: int = Field(
        default=20_000, ge=1, description="Longer texts are refused (tokens are truncated anyway)."
    )
    max_request_bytes: int = Field(
        default=4_000_000,
        ge=1024,
        description="Larger request bodies are refused (413) before they are read whole.",
    )
    max_queued_requests: int = Field(
        default=64,
        ge=1,
        description="Requests Serve queues while every replica is busy (or restarting "
        "after a crash); more get 503 with Retry-After instead of waiting.",
    )
    explain_steps: int = Field(
        default=32,
        ge=2,
        le=256,
        description="Integrated-gradients steps of /explain (each a forward and backward pass).",
    )
    explain_concurrency: int = Field(
        default=1,
        ge=1,
        description="Explanations one replica computes at once, off the event loop; up to four "
        "times as many wait, and more get 503 with Retry-After, so /predict never waits on them.",
    )
    runtime: Literal["torch", "int8"] = Field(
        default="torch",
        description="How replicas run the model: torch (the checkpoint's float weights) or "
        "int8 (PyTorch's dynamic int8 quantization of the linear layers, CPU only: about twice "
        "the texts/s). int8 is a candidate of its own: the gate measures it on the test split "
        "and compares it with the live model like any other.",
    )
    gate: GateConfig = GateConfig()
    select: SelectConfig | None = Field(
        default=None,
        description="Multi-objective sweeps: which Pareto-optimal trial to deploy "
        "({fastest_within: 0.01} or {max_latency_ms: 20}); default: the most accurate.",
    )
    smoke_test: list[str] = Field(
        default_factory=list,
        description="Texts sent to the service right after it deploys; answers are printed.",
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, values: Any) -> Any:
        """`max_batch` (hpo < 0.2) read like `max_batch_size`, a different limit."""
        return rename_key(values, section="serve", old="max_batch", new="max_inputs_per_request")

    @property
    def replica_threads(self) -> int:
        """Torch threads of one replica: its CPUs, at least one."""
        return max(1, int(self.cpus_per_replica))

    def ray_environment(self) -> dict[str, str]:
        """The environment an embedded Ray needs for `ingress` (Ray Serve reads it from the
        environment of every Ray process, so it is set before Ray starts)."""
        from hpo.serve.ingress import ray_environment

        return ray_environment(self.ingress)

    @model_validator(mode="after")
    def _int8_on_cpus(self) -> ServeConfig:
        if self.runtime == "int8" and self.gpus_per_replica > 0:
            raise ValueError(
                "runtime: int8 runs on CPUs only; set gpus_per_replica: 0 or runtime: torch"
            )
        return self
