"""What the agent reads from a conversation's stored events when its loop (re)starts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from convo.agent.history import since_last_user_message
from convo.domain.conversation import AgentState
from convo.domain.events import ActionType, Event, EventSource, ObservationType

EXECUTABLE_ACTIONS = {
    ActionType.RUN,
    ActionType.READ,
    ActionType.EDIT,
    ActionType.THINK,
    ActionType.MCP,
}
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
    answered = {e.cause for e in history if e.observation is not None and e.cause is not None}
    return [
        e
        for e in history
        if e.source == EventSource.AGENT
        and e.action in EXECUTABLE_ACTIONS
        and e.id >= 0
        and e.id not in answered
        # an action awaiting confirmation never runs itself (its decided copy does)
        and (e.args or {}).get("confirmation_state") != "awaiting_confirmation"
    ]


@dataclass(frozen=True)
class JournalView:
    """What a dead loop recorded of its actions (``services.action_journal``)."""

    started: int | None = None  # the last action whose command was started
    results: Mapping[int, Event] = field(default_factory=dict)  # action id -> its result

    def fate(self, action: Event) -> tuple[Literal["finished", "cut_off", "not_started"], Event]:
        """What happened to ``action``'s command: it finished (with this observation), it was
        cut off while running, or it never started. Without a record of it: cut off."""
        found = self.results.get(action.id)
        if found is not None and found.observation is not None and found.cause == action.id:
            return "finished", found
        if self.started is not None and action.id > self.started:
            return "not_started", action
        return "cut_off", action


def _ends_turn(event: Event) -> bool:
    if event.source == EventSource.AGENT and event.action in (
        ActionType.MESSAGE,
        ActionType.FINISH,
    ):
        return True
    if event.observation == ObservationType.AGENT_STATE_CHANGED:
        state = (event.extras or {}).get("agent_state")
        return state in {s.value for s in _TURN_ENDING_STATES}
    return False


def unanswered(history: Sequence[Event]) -> bool:
    """Whether the last user message still waits for the agent (its turn never ended)."""
    for event in reversed(history):
        if event.action == ActionType.MESSAGE and event.source == EventSource.USER:
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
        if metadata:
            responses.add(
                str(
                    (metadata.get("model_response") or {}).get("id") or metadata.get("tool_call_id")
                )
            )
        elif event.source == EventSource.AGENT and event.action == ActionType.MESSAGE:
            messages += 1
    return len(responses) + messages
