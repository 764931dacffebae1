"""Stopping every running loop for a server shutdown, within a grace period.

Each loop is told to start no new work (``draining``); a loop running a command gets up to
half the grace period for it to finish, so that its real result is stored rather than an
"interrupted" one after the restart; a loop waiting for the user or for the model is at a
safe point already. Then all loops are cancelled together and waited for (their sandboxes
close, killing their process groups) until the grace period is nearly over. A sandbox whose
loop still has not ended is closed directly. Nothing here records a user's stop: those
conversations resume on the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from convo.services.running import RunningConversation

logger = logging.getLogger(__name__)

StopLoop = Callable[[str, float], Awaitable[bool]]
"""Cancel one loop (by conversation id) and wait for it at most the given seconds."""

_EXIT_MARGIN_SECONDS = 0.5  # left for closing streams and the database


async def stop_gracefully(
    conversations: Sequence[RunningConversation], stop: StopLoop, grace_seconds: float
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_seconds
    for conversation in conversations:
        conversation.draining = True
    if conversations:
        logger.info("stopping %d conversation(s) for shutdown", len(conversations))
    safe = await asyncio.gather(*(c.wait_safe_point(grace_seconds / 2) for c in conversations))
    for conversation, reached in zip(conversations, safe, strict=True):
        if not reached:
            logger.warning(
                "conversation %s: its command did not finish within the grace period; it "
                "will be recorded as interrupted",
                conversation.conversation_id,
            )
    budget = max(0.5, deadline - loop.time() - _EXIT_MARGIN_SECONDS)
    await asyncio.gather(
        *(stop(c.conversation_id, budget) for c in conversations), return_exceptions=True
    )
    for conversation in conversations:
        task = conversation.task
        if task is not None and not task.done() and conversation.sandbox is not None:
            logger.error("conversation %s did not stop in time", conversation.conversation_id)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conversation.sandbox.close(), 1.0)
