"""Ending background tasks: cancel_and_await gives the owner the task's failure and never
swallows the owner's own cancellation; cancel_and_wait ends a task even when a cancellation
is lost on the way."""

from __future__ import annotations

import asyncio

import pytest

from convo.aio import cancel_and_await, cancel_and_wait


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


async def test_cancel_and_await_ends_a_running_task_quietly() -> None:
    task = asyncio.create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    await cancel_and_await(task)
    assert task.cancelled()
    await cancel_and_await(None)  # nothing to end


async def test_cancel_and_await_re_raises_the_failure_the_task_ended_with() -> None:
    async def failing() -> None:
        raise RuntimeError("the writer failed")

    task = asyncio.create_task(failing())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="the writer failed"):
        await cancel_and_await(task)


async def test_the_owner_cancelled_while_it_waits_is_still_cancelled() -> None:
    async def slow_to_end() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.2)  # cleans up for a while after its cancellation

    task = asyncio.create_task(slow_to_end())
    await asyncio.sleep(0)
    reached_the_end = False

    async def owner() -> None:
        nonlocal reached_the_end
        await cancel_and_await(task)
        reached_the_end = True

    closing = asyncio.create_task(owner())
    await asyncio.sleep(0.05)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert not reached_the_end
    await asyncio.wait({task}, timeout=1)
    assert task.cancelled()
