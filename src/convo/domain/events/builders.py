"""Constructors for the events several layers build (with a timestamp of now)."""

from __future__ import annotations

from convo.domain.conversation import AgentState
from convo.domain.events.actions import ChangeAgentStateAction, MessageAction
from convo.domain.events.base import EventSource, now_iso
from convo.domain.events.observations import AgentStateChangedObservation, ErrorObservation


def message_action(
    content: str,
    source: EventSource,
    *,
    wait_for_response: bool = False,
    image_urls: list[str] | None = None,
    file_urls: list[str] | None = None,
) -> MessageAction:
    return MessageAction(
        timestamp=now_iso(),
        source=source,
        message=content,
        content=content,
        file_urls=file_urls or [],
        image_urls=image_urls or [],
        wait_for_response=wait_for_response,
    )


def agent_state_changed(state: AgentState, reason: str = "") -> AgentStateChangedObservation:
    return AgentStateChangedObservation(
        timestamp=now_iso(),
        source=EventSource.ENVIRONMENT,
        agent_state=state.value,
        reason=reason,
    )


def error_observation(
    content: str,
    *,
    error_id: str = "",
    cause: int | None = None,
    source: EventSource = EventSource.AGENT,
) -> ErrorObservation:
    return ErrorObservation(
        timestamp=now_iso(),
        source=source,
        message=content,
        cause=cause,
        content=content,
        error_id=error_id,
    )


def change_agent_state_action(state: AgentState, source: EventSource) -> ChangeAgentStateAction:
    return ChangeAgentStateAction(
        timestamp=now_iso(),
        source=source,
        message=f"Agent state changed to {state.value}",
        agent_state=state.value,
    )
