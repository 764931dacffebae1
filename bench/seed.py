"""Stored data for benchmarks, written straight through the storage layer (no server).

Conversation histories are made of the events the agent itself stores: a user message, then
command actions (built from tool calls, as the agent builds them) each with its result, and
a final agent message, so that a resumed agent rebuilds a real context from them.
"""

from __future__ import annotations

import asyncio
import json

from convo.agent.executor import run_observation
from convo.agent.tools import action_from_tool_call
from convo.domain.conversation import ConversationMetadata
from convo.domain.events import Event, EventSource, message_action
from convo.llm.base import LLMResponse, LLMUsage, ToolCall
from convo.runtime.base import CommandResult
from convo.storage import open_storage


def _step_events(step: int) -> Event:
    call = ToolCall(
        id=f"call_{step}",
        name="execute_bash",
        arguments=json.dumps({"command": f"echo step {step} && ls -la"}),
    )
    response = LLMResponse(
        content=None,
        tool_calls=[call],
        usage=LLMUsage(prompt_tokens=1000 + step, completion_tokens=20),
        response_id=f"bench-{step}",
    )
    return action_from_tool_call(call, response)


async def seed_history(url: str, conversation_id: str, events: int, *, running: bool) -> None:
    """A conversation of exactly ``events`` events (an even number of at least 4)."""
    storage = open_storage(url)
    try:
        await storage.migrate()
        await storage.conversations.create(
            ConversationMetadata(conversation_id=conversation_id, desired_running=running)
        )
        log = storage.events
        await log.append(conversation_id, message_action("Please do the task.", EventSource.USER))
        for step in range((events - 2) // 2):
            action = await log.append(conversation_id, _step_events(step))
            output = f"step {step}\n" + "drwxr-xr-x 2 user user 4096 Jan 1 00:00 .\n" * 5
            result = CommandResult(output=output, exit_code=0, working_dir="/workspace")
            await log.append(conversation_id, run_observation(action, result))
        await log.append(
            conversation_id, message_action("Done.", EventSource.AGENT, wait_for_response=True)
        )
    finally:
        await storage.aclose()


async def seed_conversations(url: str, count: int, user_id: str | None = None) -> None:
    """``count`` empty conversations of one user."""
    storage = open_storage(url)
    try:
        await storage.migrate()
        batch = 100
        for start in range(0, count, batch):
            await asyncio.gather(
                *(
                    storage.conversations.create(
                        ConversationMetadata(conversation_id=f"seed{i:06d}", user_id=user_id)
                    )
                    for i in range(start, min(count, start + batch))
                )
            )
    finally:
        await storage.aclose()
