"""Preparing a conversation's workspace before its status becomes RUNNING.

``prepare_workspace`` runs after the sandbox's shell is up and before the agent starts. It
returns instructions to add to the agent's system prompt (empty when there are none).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from convo.domain.conversation import ConversationMetadata
from convo.domain.events import Event
from convo.runtime.base import Sandbox

EventSink = Callable[[Event], Awaitable[Event]]


async def prepare_workspace(
    metadata: ConversationMetadata,
    sandbox: Sandbox,  # noqa: ARG001
    emit: EventSink,  # noqa: ARG001
) -> str | None:
    """Extra system-prompt instructions for this conversation, if any."""
    return metadata.conversation_instructions or None
