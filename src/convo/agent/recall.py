"""The recall events of a user message, as OpenHands' controller and memory emit them.

Every user message is followed by a ``recall`` action from the user, its text as the query:
the first message's asks for the workspace context (``workspace_context``), each later one's
for knowledge (``knowledge``). The environment answers it (``cause``: the action's id) with

- for the workspace context, a ``recall`` observation with the repository, its branch and
  instructions, the date (UTC), the working directory, the user's secrets as the shell has
  them (variable name -> description; never a value) and the knowledge microagents the
  message triggers;
- for knowledge, a ``recall`` observation with the knowledge microagents the message
  triggers, or a ``null`` observation when it triggers none.

The model reads the triggered knowledge (``convo.agent.history``); the rest of the workspace
context is in its system prompt already (``convo.agent.prompts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from convo.agent.start_events import WORKSPACE_CONTEXT, WorkspaceContext
from convo.domain.events import (
    Event,
    EventSource,
    MessageAction,
    MicroagentKnowledge,
    NullObservation,
    Observation,
    RecallAction,
    RecallObservation,
    now_iso,
)

KNOWLEDGE = "knowledge"
QUERY_IN_MESSAGE = 50  # characters of the query the action's ``message`` repeats


def recall_action(message: MessageAction, recall_type: str) -> RecallAction:
    return RecallAction(
        timestamp=now_iso(),
        source=EventSource.USER,
        message=f"Retrieving content for: {message.content[:QUERY_IN_MESSAGE]}",
        recall_type=recall_type,
        query=message.content,
    )


def workspace_observation(
    action: Event,
    context: WorkspaceContext,
    working_dir: str,
    knowledge: Sequence[MicroagentKnowledge] = (),
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
        date=datetime.now(UTC).date().isoformat(),
        custom_secrets_descriptions=dict(context.secrets),
        conversation_instructions=context.conversation_instructions,
        working_dir=working_dir,
        microagent_knowledge=list(knowledge),
    )


def knowledge_observation(
    action: Event, knowledge: Sequence[MicroagentKnowledge]
) -> RecallObservation | NullObservation:
    cause = action.id if action.id >= 0 else None
    if not knowledge:
        return NullObservation(
            timestamp=now_iso(),
            source=EventSource.ENVIRONMENT,
            message="No observation",
            cause=cause,
        )
    return RecallObservation(
        timestamp=now_iso(),
        source=EventSource.ENVIRONMENT,
        message="Added microagent knowledge",
        cause=cause,
        content="Retrieved knowledge from microagents",
        recall_type=KNOWLEDGE,
        microagent_knowledge=list(knowledge),
    )


@dataclass(frozen=True)
class Progress:
    """How far a user message's recall got (a loop may have died in between)."""

    action: RecallAction | None = None  # its recall action, once stored
    answered: bool = False  # the environment answered it


def progress(history: Sequence[Event], message: Event) -> Progress:
    """The recall of ``message`` among the events stored after it, up to the next user
    message. A recall observation caused by the message itself (as convo stored knowledge
    before it stored recall actions for later messages) counts as answered."""
    after = _after(history, message)
    if any(isinstance(e, RecallObservation) and e.cause == message.id for e in after):
        return Progress(answered=True)
    action = next((e for e in after if isinstance(e, RecallAction)), None)
    if action is None:
        return Progress()
    answered = any(isinstance(e, Observation) and e.cause == action.id for e in after)
    return Progress(action, answered)


def _after(history: Sequence[Event], message: Event) -> list[Event]:
    start = next((i + 1 for i, e in enumerate(history) if e.id == message.id), len(history))
    following: list[Event] = []
    for event in history[start:]:
        if isinstance(event, MessageAction) and event.source == EventSource.USER:
            break
        following.append(event)
    return following
