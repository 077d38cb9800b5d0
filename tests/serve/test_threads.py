"""A replica's torch work stays on one thread; explanations' threads end with them."""

from __future__ import annotations

import asyncio
import threading

from hpo.serve.threads import TorchThread, run_in_own_thread


def test_every_call_runs_on_the_same_thread() -> None:
    torch_thread = TorchThread("test-model")

    async def from_the_loop() -> list[threading.Thread]:
        return [await torch_thread.run(threading.current_thread) for _ in range(5)]

    seen = [torch_thread.call(threading.current_thread) for _ in range(5)]
    seen += asyncio.run(from_the_loop())
    assert len(set(seen)) == 1
    assert seen[0] is not threading.current_thread()


def test_a_thread_of_its_own_ends_with_its_call() -> None:
    async def twice() -> list[threading.Thread]:
        return [await run_in_own_thread(threading.current_thread) for _ in range(2)]

    first, second = asyncio.run(twice())
    assert first is not second
    for thread in (first, second):
        thread.join(timeout=10)
        assert not thread.is_alive()
