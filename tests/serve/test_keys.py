"""The API key: never empty or short, written whole, read stripped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hpo.core.errors import UserError
from hpo.core.storage import StorageDir
from hpo.serve.keys import MIN_KEY_CHARS, api_key


@pytest.fixture(autouse=True)
def no_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HPO_API_KEY", raising=False)


def test_a_new_key_is_long_private_and_kept(tmp_path: Path) -> None:
    key, path = api_key(StorageDir.at(tmp_path))
    assert len(key) >= MIN_KEY_CHARS and path == tmp_path / "api_key"
    assert oct(path.stat().st_mode)[-3:] == "600"
    assert api_key(StorageDir.at(tmp_path))[0] == key
    assert [p.name for p in tmp_path.iterdir()] == ["api_key"]  # no temporary file left


def test_a_key_file_left_empty_by_a_crash_is_made_anew(tmp_path: Path) -> None:
    (tmp_path / "api_key").write_text("\n")
    key, _ = api_key(StorageDir.at(tmp_path))
    assert len(key) >= MIN_KEY_CHARS


def test_a_short_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "api_key").write_text("secret\n")
    with pytest.raises(UserError, match="has 6 characters; use at least 32"):
        api_key(StorageDir.at(tmp_path))
    monkeypatch.setenv("HPO_API_KEY", "  short  ")
    with pytest.raises(UserError, match="HPO_API_KEY: the API key has 5 characters"):
        api_key(StorageDir.at(tmp_path))


def test_the_environment_key_is_stripped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPO_API_KEY", f"  {'k' * 40}\n")
    assert api_key(StorageDir.at(tmp_path)) == ("k" * 40, None)
    assert not os.listdir(tmp_path)


def test_the_service_refuses_to_start_with_a_short_key(tiny_model: str) -> None:
    from hpo.serve.app import build_app
    from hpo.serve.config import ServeConfig

    with pytest.raises(UserError, match="use at least 32"):
        build_app(tiny_model, {}, "", ServeConfig())
