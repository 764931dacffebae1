"""cancel_and_wait ends a task even when a cancellation is lost on the way."""

from __future__ import annotations

import asyncio

from convo.cluster.tasks import cancel_and_wait


async def test_a_task_that_loses_a_cancellation_is_still_ended() -> None:
    lost = 0

    async def stubborn() -> None:
        nonlocal lost
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if lost < 2:  # as Python 3.11's wait_for does when its inner call finishes
                    lost += 1
                    continue
                raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task), 5)
    assert task.cancelled() and lost == 2


async def test_a_failed_task_is_waited_for_without_raising() -> None:
    async def failing() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(failing())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert isinstance(task.exception(), RuntimeError)
