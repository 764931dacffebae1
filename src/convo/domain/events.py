"""Events in OpenHands' wire shape.

An event is either an action (``action`` + ``args``) or an observation (``observation`` +
``content`` + ``extras``). Storage gives each event of a conversation an increasing integer
``id`` from 0; an event not yet stored has ``id == -1``. Events are immutable once built.

Rule: an event stored by any version of convo always loads; fields are only ever added.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from convo.domain.conversation import AgentState

SECRET_PLACEHOLDER = "<secret_hidden>"


class EventSource(StrEnum):
    AGENT = "agent"
    USER = "user"
    ENVIRONMENT = "environment"


class ActionType(StrEnum):
    MESSAGE = "message"
    SYSTEM = "system"
    RUN = "run"
    READ = "read"
    EDIT = "edit"
    THINK = "think"
    FINISH = "finish"
    CHANGE_AGENT_STATE = "change_agent_state"
    CONDENSATION = "condensation"
    RECALL = "recall"


class ObservationType(StrEnum):
    RUN = "run"
    READ = "read"
    EDIT = "edit"
    THINK = "think"
    ERROR = "error"
    AGENT_STATE_CHANGED = "agent_state_changed"
    USER_REJECTED = "user_rejected"
    NULL = "null"
    RECALL = "recall"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class Event(BaseModel):
    """One entry of a conversation's event log, as OpenHands serialises it."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: int = -1
    timestamp: str = ""
    source: EventSource = EventSource.ENVIRONMENT
    message: str = ""
    cause: int | None = None
    action: str | None = None
    args: dict[str, Any] | None = None
    observation: str | None = None
    content: str | None = None
    extras: dict[str, Any] | None = None
    success: bool | None = None
    timeout: float | None = None
    tool_call_metadata: dict[str, Any] | None = None
    llm_metrics: dict[str, Any] | None = None

    @property
    def is_action(self) -> bool:
        return self.action is not None

    def to_wire(self) -> dict[str, Any]:
        """The JSON object sent to clients and stored."""
        return self.model_dump(mode="json", exclude_none=True)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Event:
        return cls.model_validate(data)

    def stored(self, event_id: int, timestamp: str | None = None) -> Event:
        """A copy carrying the id (and timestamp) storage gave it."""
        return self.model_copy(update={"id": event_id, "timestamp": timestamp or self.timestamp})


# --- constructors ------------------------------------------------------------------------
def _event(**fields: Any) -> Event:
    fields.setdefault("timestamp", now_iso())
    return Event(**fields)


def message_action(
    content: str,
    source: EventSource,
    *,
    wait_for_response: bool = False,
    image_urls: list[str] | None = None,
) -> Event:
    return _event(
        source=source,
        message=content,
        action=ActionType.MESSAGE,
        args={
            "content": content,
            "file_urls": [],
            "image_urls": image_urls or [],
            "wait_for_response": wait_for_response,
        },
    )


def agent_state_changed(state: AgentState, reason: str = "") -> Event:
    return _event(
        source=EventSource.ENVIRONMENT,
        observation=ObservationType.AGENT_STATE_CHANGED,
        content="",
        extras={"agent_state": state.value, "reason": reason},
    )


def error_observation(
    content: str,
    *,
    error_id: str = "",
    cause: int | None = None,
    source: EventSource = EventSource.AGENT,
) -> Event:
    return _event(
        source=source,
        message=content,
        cause=cause,
        observation=ObservationType.ERROR,
        content=content,
        extras={"error_id": error_id},
    )


def change_agent_state_action(state: AgentState, source: EventSource) -> Event:
    return _event(
        source=source,
        message=f"Agent state changed to {state.value}",
        action=ActionType.CHANGE_AGENT_STATE,
        args={"agent_state": state.value, "thought": ""},
    )


# --- secret masking ----------------------------------------------------------------------
_TOP_LEVEL_KEPT = {"id", "timestamp", "source", "cause", "action", "observation"}
# Shorter values are hidden only where a whole string equals them: replacing every "k" or
# "ab" inside every text would destroy the events while protecting nothing.
MIN_SUBSTRING_SECRET = 4


def _ordered(secrets: Iterable[str]) -> list[str]:
    """Distinct non-empty values, longest first, so one containing another is hidden whole."""
    return sorted({s for s in secrets if s}, key=len, reverse=True)


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """The text with every secret value replaced by ``<secret_hidden>``."""
    return str(_mask_value(text, _ordered(secrets)))


def _mask_value(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if len(secret) >= MIN_SUBSTRING_SECRET:
                value = value.replace(secret, SECRET_PLACEHOLDER)
            elif value == secret:
                return SECRET_PLACEHOLDER
        return value
    if isinstance(value, dict):
        return {k: _mask_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_value(v, secrets) for v in value]
    return value


def mask_secrets(event: Event, secrets: Iterable[str]) -> Event:
    """Replace every secret value in the event's strings with ``<secret_hidden>``.

    Longer secrets are replaced first so that one secret containing another is hidden whole.
    """
    values = _ordered(secrets)
    if not values:
        return event
    data = event.model_dump(mode="json")
    masked = {k: v if k in _TOP_LEVEL_KEPT else _mask_value(v, values) for k, v in data.items()}
    return Event.model_validate(masked)
