"""The base class of every sweep-file section, and renamed keys that still work for a while."""

from __future__ import annotations

import warnings
from typing import Any

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A sweep-file section: unknown keys are errors, so a typo never vanishes silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SweepFileWarning(UserWarning):
    """Something in a sweep file that still works but the user should know of; the CLI prints
    each as one `warning:` line."""


class RenamedKeyWarning(SweepFileWarning, FutureWarning):
    """A sweep file uses a key's old name."""


def rename_key(values: Any, *, section: str, old: str, new: str) -> Any:
    """Moves a section's `old` key to `new` with a warning (for `mode="before"` validators);
    giving both is an error, since they would disagree."""
    if not isinstance(values, dict) or old not in values:
        return values
    if new in values:
        raise ValueError(f"{section}.{old} is the old name of {section}.{new}; give only {new}")
    warnings.warn(
        f"{section}.{old} is renamed {section}.{new}; the old name will stop working",
        RenamedKeyWarning,
        stacklevel=2,
    )
    values = dict(values)
    values[new] = values.pop(old)
    return values
