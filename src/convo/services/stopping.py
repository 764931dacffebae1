"""Ending a conversation's loop: cancel its task and wait (bounded) until it has ended.

``StopResult`` says what really happened, so that a caller never reports a loop as stopped
while its task still runs (its sandbox may still be closing, or a cancel was lost).
"""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum

from convo.services.running import RunningConversation

logger = logging.getLogger(__name__)


class StopResult(StrEnum):
    NOT_RUNNING = "not_running"  # there was no loop to stop
    STOPPED = "stopped"  # the loop has ended: its sandbox is closed
    STILL_RUNNING = "still_running"  # cancelled, but it had not ended when the wait ran out

    @property
    def ended(self) -> bool:
        return self is not StopResult.STILL_RUNNING


async def cancel_and_wait(running: RunningConversation, wait_seconds: float) -> bool:
    """Cancel the loop's task and wait (bounded) for it to end, cancelling again while it
    has not reached its cleanup; True when it has ended.

    A single cancel can be lost: on Python 3.11 ``asyncio.wait_for`` inside the task returns
    its result instead of raising when the result and the cancellation arrive together.
    """
    task = running.task
    assert task is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            logger.warning(
                "%s did not end within %.0f s of its stop", task.get_name(), wait_seconds
            )
            return False
        if not running.ending:
            task.cancel()
        await asyncio.wait({task}, timeout=min(0.5, remaining))
    return True
