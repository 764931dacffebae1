"""Ending background tasks, for every layer: each owner cancels its tasks and waits for them
to end before it reports itself closed.

- :func:`cancel_and_await` ends one task its owner runs: the task's own failure reaches the
  owner (re-raised), its cancellation does not, and a cancellation of the owner itself while
  it waits is never swallowed.
- :func:`cancel_and_wait` ends tasks for sure, even one that loses a cancellation (see there),
  and raises nothing: for adapters whose tasks log their own failures where they run.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_await(task: asyncio.Task[Any] | asyncio.Future[Any] | None) -> None:
    """Cancel ``task`` (None: nothing to do) and wait until it has ended; re-raise the
    exception it ended with, unless that is the cancellation asked for here."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the owner itself is being cancelled: not ours to swallow


async def cancel_and_wait(*tasks: asyncio.Task[Any]) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again any that goes on.

    On Python 3.11 a cancellation that meets ``asyncio.wait_for`` finishing is lost (redis-py
    sends every command in one, with the socket timeout): a task cancelled once may go back
    to waiting for work, and whoever awaited it would wait forever. Their exceptions are
    retrieved here (a task that failed is logged where it ran, or re-raised by its owner)."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.05)
    for task in tasks:
        if not task.cancelled():
            task.exception()
