"""The `serve:` section: a renamed key keeps working, with a warning, for a while; settings
that cannot work together are refused when the sweep file is read."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hpo.core.config import RenamedKeyWarning
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
