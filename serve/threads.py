"""Where a replica's torch work runs. OpenMP gives every thread that runs a parallel operation
its own team of worker threads, for as long as that thread lives. With two live teams on a
machine with few cores, libgomp stops spinning between operations and every forward pass
waits on woken threads: one SST-2 sentence through MiniLM took 12 ms instead of 5 ms on 2
cores (asyncio.to_thread spreads passes over a pool of threads; a thread that had loaded the
model was enough). So the model is loaded and every prediction runs on one `TorchThread`, and
each explanation on a thread of its own that ends with it, taking its team along."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


async def _run_on(executor: ThreadPoolExecutor, function: Callable[..., T], *args, **kwargs) -> T:
    """Awaits `function` on `executor`'s thread from the running event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, functools.partial(function, *args, **kwargs))


class TorchThread:
    """One long-lived thread that runs calls one after another."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def call(self, function: Callable[..., T], *args, **kwargs) -> T:
        """Runs `function` on this thread and waits for it (from a thread without a loop)."""
        return self._executor.submit(function, *args, **kwargs).result()

    async def run(self, function: Callable[..., T], *args, **kwargs) -> T:
        """Runs `function` on this thread without blocking the event loop."""
        return await _run_on(self._executor, function, *args, **kwargs)


async def run_in_own_thread(function: Callable[..., T], *args, **kwargs) -> T:
    """Runs `function` on a new thread that ends once it returns."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hpo-once")
    try:
        return await _run_on(executor, function, *args, **kwargs)
    finally:
        executor.shutdown(wait=False)  # the thread ends at once: its call has returned
