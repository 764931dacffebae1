"""The events that open a conversation, as OpenHands' agent emits them.

- ``system``: the system prompt and the tools the agent was given, once per conversation,
  when its loop first starts (OpenHands' SystemMessageAction).
- The workspace-context recall of the first user message: a ``recall`` action (source user,
  ``recall_type: workspace_context``, the message as the query) answered by a ``recall``
  observation from the environment with the repository, its instructions, the date and the
  working directory (OpenHands' RecallAction and RecallObservation). The model already has
  that context in its system prompt; these events show it to clients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from convo import __version__
from convo.domain.events import (
    Event,
    EventSource,
    MessageAction,
    RecallAction,
    RecallObservation,
    SystemMessageAction,
    now_iso,
)

AGENT_CLASS = "CodeActAgent"
WORKSPACE_CONTEXT = "workspace_context"


@dataclass(frozen=True)
class WorkspaceContext:
    """What the workspace-context recall reports (from the conversation's metadata)."""

    repository: str | None = None
    branch: str | None = None
    instructions: str | None = None  # the repository's own (its repo microagents)
    conversation_instructions: str = ""


def is_start_event(event: Event) -> bool:
    """The system action or a workspace-context recall (the model never reads them)."""
    return isinstance(event, SystemMessageAction) or (
        isinstance(event, RecallAction | RecallObservation)
        and event.recall_type == WORKSPACE_CONTEXT
    )


def has_system_action(history: Sequence[Event]) -> bool:
    return any(isinstance(e, SystemMessageAction) for e in history)


def system_action(prompt: str, tools: list[dict[str, Any]]) -> SystemMessageAction:
    return SystemMessageAction(
        timestamp=now_iso(),
        source=EventSource.AGENT,
        message=prompt,
        content=prompt,
        tools=tools,
        openhands_version=__version__,
        agent_class=AGENT_CLASS,
    )


def needs_workspace_recall(history: Sequence[Event]) -> bool:
    return not any(
        isinstance(e, RecallAction) and e.recall_type == WORKSPACE_CONTEXT for e in history
    )


def workspace_recall_action(message: MessageAction) -> RecallAction:
    return RecallAction(
        timestamp=now_iso(),
        source=EventSource.USER,
        message=f"Retrieving content for: {message.content[:100]}",
        recall_type=WORKSPACE_CONTEXT,
        query=message.content,
    )


def workspace_recall_observation(
    action: Event, context: WorkspaceContext, working_dir: str
) -> RecallObservation:
    repository = context.repository or ""
    return RecallObservation(
        timestamp=now_iso(),
        source=EventSource.ENVIRONMENT,
        message="Added workspace context",
        cause=action.id if action.id >= 0 else None,
        content="Added workspace context",
        recall_type=WORKSPACE_CONTEXT,
        repo_name=repository,
        repo_directory=repository.rsplit("/", 1)[-1],
        repo_branch=context.branch or "",
        repo_instructions=context.instructions or "",
        date=date.today().isoformat(),
        conversation_instructions=context.conversation_instructions,
        working_dir=working_dir,
    )
