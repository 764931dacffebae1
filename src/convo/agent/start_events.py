"""The events that open a conversation, as OpenHands' agent emits them.

- ``system``: the system prompt and the tools the agent was given, once per conversation,
  when its loop first starts (OpenHands' SystemMessageAction).
- The workspace-context recall of the first user message (built in ``agent.recall``): a
  ``recall`` action (source user, ``recall_type: workspace_context``) answered by a ``recall``
  observation from the environment. The model already has that context in its system
  prompt, so it never reads these events, unless the observation carries knowledge
  microagents the message triggered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from convo import __version__
from convo.domain.events import (
    Event,
    EventSource,
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
    # the user's secrets in the shell's environment: variable name -> description
    secrets: Mapping[str, str] = field(default_factory=dict)


def is_start_event(event: Event) -> bool:
    """The system action or a workspace-context recall (the model never reads them), but a
    recall observation carrying triggered knowledge, which the model reads."""
    if isinstance(event, RecallObservation) and event.microagent_knowledge:
        return False
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
