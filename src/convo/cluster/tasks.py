"""Ending the cluster adapters' background tasks for sure."""

from __future__ import annotations

import asyncio
from typing import Any


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
