"""What the agent reads from a conversation's stored events when its loop (re)starts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from convo.agent.history import since_last_user_message
from convo.domain.conversation import AgentState
from convo.domain.events import (
    AgentFinishAction,
    AgentStateChangedObservation,
    AgentThinkAction,
    CmdRunAction,
    Event,
    EventSource,
    FileEditAction,
    FileReadAction,
    MCPAction,
    MessageAction,
    Observation,
    confirmation_state,
)

EXECUTABLE_ACTIONS = (CmdRunAction, FileReadAction, FileEditAction, AgentThinkAction, MCPAction)
# States in which the agent had handed the turn back to the user.
_TURN_ENDING_STATES = {
    AgentState.AWAITING_USER_INPUT,
    AgentState.FINISHED,
    AgentState.ERROR,
    AgentState.PAUSED,
    AgentState.STOPPED,
    AgentState.REJECTED,
}


def interrupted_actions(history: Sequence[Event]) -> list[Event]:
    """Agent actions that were stored but never got an observation (the loop died mid-way)."""
    answered = {e.cause for e in history if isinstance(e, Observation) and e.cause is not None}
    return [
        e
        for e in history
        if e.source == EventSource.AGENT
        and isinstance(e, EXECUTABLE_ACTIONS)
        and e.id >= 0
        and e.id not in answered
        # an action awaiting confirmation never runs itself (its decided copy does)
        and confirmation_state(e) != "awaiting_confirmation"
    ]


@dataclass(frozen=True)
class JournalView:
    """What a dead loop recorded of its actions (``services.action_journal``)."""

    started: int | None = None  # the last action whose command was started
    results: Mapping[int, Event] = field(default_factory=dict)  # action id -> its result
    exit_status: int | None = None  # the ``started`` action's command ended with this status

    def fate(
        self, action: Event
    ) -> tuple[Literal["finished", "exited", "cut_off", "not_started"], Event]:
        """What happened to ``action``'s command: it finished (with this observation), it
        ended with ``exit_status`` but its output was lost, it was cut off while running, or
        it never started. Without a record of it: cut off."""
        found = self.results.get(action.id)
        if found is not None and isinstance(found, Observation) and found.cause == action.id:
            return "finished", found
        if self.started is not None and action.id > self.started:
            return "not_started", action
        if action.id == self.started and self.exit_status is not None:
            return "exited", action
        return "cut_off", action


def _ends_turn(event: Event) -> bool:
    if event.source == EventSource.AGENT and isinstance(event, MessageAction | AgentFinishAction):
        return True
    if isinstance(event, AgentStateChangedObservation):
        return event.agent_state in {s.value for s in _TURN_ENDING_STATES}
    return False


def unanswered(history: Sequence[Event]) -> bool:
    """Whether the last user message still waits for the agent (its turn never ended)."""
    for event in reversed(history):
        if isinstance(event, MessageAction) and event.source == EventSource.USER:
            return True
        if _ends_turn(event):
            return False
    return False


def iterations_since_user(history: Sequence[Event]) -> int:
    """LLM calls made since the last user message: one per model response seen."""
    responses: set[str] = set()
    messages = 0
    for event in since_last_user_message(history):
        metadata = event.tool_call_metadata
        if metadata is not None:
            responses.add(str(metadata.model_response.get("id") or metadata.tool_call_id))
        elif event.source == EventSource.AGENT and isinstance(event, MessageAction):
            messages += 1
    return len(responses) + messages
