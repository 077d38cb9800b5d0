"""The `serve:` section: a renamed key keeps working, with a warning, for a while; settings
that cannot work together are refused when the sweep file is read."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from hpo.core.config import RenamedKeyWarning
from hpo.core.errors import UserError
from hpo.serve import ingress
from hpo.serve.config import ServeConfig


def test_max_batch_is_now_max_inputs_per_request() -> None:
    with pytest.warns(RenamedKeyWarning, match="serve.max_batch is renamed"):
        settings = ServeConfig.model_validate({"max_batch": 8})
    assert settings.max_inputs_per_request == 8
    assert settings.max_batch_size == 32  # the other limit, texts per forward pass, untouched


def test_old_and_new_name_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="give only max_inputs_per_request"):
        ServeConfig.model_validate({"max_batch": 8, "max_inputs_per_request": 8})


def test_the_int8_runtime_is_refused_on_gpus() -> None:
    with pytest.raises(ValidationError, match="int8 runs on CPUs only"):
        ServeConfig.model_validate({"runtime": "int8", "gpus_per_replica": 1})
    assert ServeConfig.model_validate({"runtime": "int8"}).runtime == "int8"


@pytest.mark.parametrize("installed", [True, False])
def test_ingress_auto_takes_haproxy_where_it_is_installed(monkeypatch, installed: bool) -> None:
    monkeypatch.setattr(ingress, "haproxy_installed", lambda: installed)
    environment = ServeConfig().ray_environment()
    assert (environment.get("RAY_SERVE_ENABLE_HA_PROXY") == "1") is installed
    if installed:  # its files are this process's own, not Ray's machine-wide folder
        assert all(
            f"hpo-haproxy-{os.getpid()}" in value
            for name, value in environment.items()
            if name.endswith(("_LOC", "_PATH", "_BASE", "_FILE"))
        )


def test_ingress_proxy_keeps_ray_serves_proxy(monkeypatch) -> None:
    monkeypatch.setattr(ingress, "haproxy_installed", lambda: True)
    assert ServeConfig.model_validate({"ingress": "proxy"}).ray_environment() == {}


def test_ingress_haproxy_without_haproxy_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setattr(ingress, "haproxy_installed", lambda: False)
    with pytest.raises(UserError, match="pip install 'ray\\[serve\\]'.*serve.ingress: proxy"):
        ServeConfig.model_validate({"ingress": "haproxy"}).ray_environment()


def test_haproxy_files_of_ended_processes_are_removed(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(ingress, "haproxy_installed", lambda: True)
    monkeypatch.setattr(ingress.tempfile, "gettempdir", lambda: str(tmp_path))
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    gone = tmp_path / f"hpo-haproxy-{ended.pid}"
    alive = tmp_path / f"hpo-haproxy-{os.getppid()}"  # another hpo process, still running
    for folder in (gone, alive):
        (folder / "state").mkdir(parents=True)
    ServeConfig().ray_environment()
    assert not gone.exists()
    assert alive.exists()
