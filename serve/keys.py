"""The API key of the served models: HPO_API_KEY, else a key generated on first deploy into
`<storage>/api_key` (mode 600; for a bucket, in its local mirror, never uploaded).

A key is never shorter than MIN_KEY_CHARS: an empty key would let every request through
(`compare_digest(b"", b"")` is true), so a key file that a crash left empty is made anew and
a short one is refused."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from hpo.core.errors import UserError
from hpo.core.rundir import KEY_FILE
from hpo.core.storage import StorageDir

MIN_KEY_CHARS = 32
KEY_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def check_key(key: str, where: str) -> str:
    """The key, if long enough; raises UserError naming `where` it came from otherwise."""
    if len(key) < MIN_KEY_CHARS:
        raise UserError(
            f"{where}: the API key has {len(key)} characters; use at least {MIN_KEY_CHARS}, "
            f"e.g. from `{KEY_HINT}`"
        )
    return key


def _create_key_file(path: Path) -> None:
    """Writes a new key whole, with mode 600, through a temporary file that is then linked
    into place: a crash leaves no half-written key, and of two deploys at once the first link
    wins and both use its key."""
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_urlsafe(MIN_KEY_CHARS) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(partial, path)
    except FileExistsError:
        pass
    finally:
        partial.unlink()


def api_key(storage: StorageDir) -> tuple[str, Path | None]:
    """The key, and the file that holds it (None when it comes from HPO_API_KEY)."""
    from_env = os.environ.get("HPO_API_KEY", "").strip()
    if from_env:
        return check_key(from_env, "HPO_API_KEY"), None
    path = storage.local / KEY_FILE
    storage.local.mkdir(parents=True, exist_ok=True)
    if path.is_file() and not path.read_text().strip():
        path.unlink()  # left empty by a crash between creating and writing it: never used
    if not path.is_file():
        _create_key_file(path)
    return check_key(path.read_text().strip(), str(path)), path
