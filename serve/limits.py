"""A concurrency limit with a bounded waiting room, for work that must not pile up on a replica
(explanations): `slots` run at once, `waiting` more wait their turn, and the rest are told to
come back later instead of queueing without end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Busy(Exception):
    """Every slot is taken and the waiting room is full."""


class Slots:
    def __init__(self, slots: int, waiting: int) -> None:
        self._semaphore = asyncio.Semaphore(slots)
        self._capacity = slots + waiting
        self.held = 0  # running or waiting

    @contextlib.asynccontextmanager
    async def take(self) -> AsyncIterator[None]:
        """Holds a slot for the block; raises Busy at once when the waiting room is full."""
        if self.held >= self._capacity:
            raise Busy
        self.held += 1
        try:
            async with self._semaphore:
                yield
        finally:
            self.held -= 1
