"""The API key of the served models: HPO_API_KEY, else a key generated on first deploy into
`<storage>/api_key` (mode 600; for a bucket, in its local mirror, never uploaded)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from hpo.core.rundir import KEY_FILE
from hpo.core.storage import StorageDir


def api_key(storage: StorageDir) -> tuple[str, Path | None]:
    """The key, and the file that holds it (None when it comes from HPO_API_KEY)."""
    if os.environ.get("HPO_API_KEY"):
        return os.environ["HPO_API_KEY"], None
    path = storage.local / KEY_FILE
    if not path.is_file():
        storage.local.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip(), path
