"""The explanation limit without a service: slots, a bounded waiting room, then Busy."""

from __future__ import annotations

import asyncio

import pytest

from hpo.serve.limits import Busy, Slots


def test_slots_run_some_keep_some_waiting_and_refuse_the_rest() -> None:
    async def scenario() -> tuple[int, int, int]:
        slots, release = Slots(1, 2), asyncio.Event()
        running = 0

        async def work() -> None:
            nonlocal running
            async with slots.take():
                running += 1
                await release.wait()

        tasks = [asyncio.create_task(work()) for _ in range(3)]
        await asyncio.sleep(0.01)
        with pytest.raises(Busy):
            async with slots.take():
                pass
        at_once, held = running, slots.held
        release.set()
        await asyncio.gather(*tasks)
        return at_once, held, slots.held

    assert asyncio.run(scenario()) == (1, 3, 0)
