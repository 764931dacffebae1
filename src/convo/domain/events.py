"""Events in OpenHands' wire shape.

An event is either an action (``action`` + ``args``) or an observation (``observation`` +
``content`` + ``extras``). Storage gives each event of a conversation an increasing integer
``id`` from 0; an event not yet stored has ``id == -1``. Events are immutable once built.

Rule: an event stored by any version of convo always loads; fields are only ever added.

Whatever the LLM or a command sends, an event holds only what JSON and every store can carry
and every client can decode: a NUL or a lone UTF-16 surrogate in a string (in keys too)
becomes U+FFFD, a NaN or infinite number becomes null. This holds for events built now and
for events loaded from storage (an older version may have stored such a value).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

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
    MCP = "call_tool_mcp"


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
    MCP = "mcp"


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

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        return storable(data) if isinstance(data, dict) else data

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


# --- what an event may hold --------------------------------------------------------------
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def _unstorable(text: str) -> bool:
    if "\x00" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")  # fails only on a surrogate
    except UnicodeEncodeError:
        return True
    return False


def storable(value: Any) -> Any:
    """``value`` with every unstorable piece replaced (the same object when none is)."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(REPLACEMENT, value) if _unstorable(value) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        pairs = [(k, v, storable(k), storable(v)) for k, v in value.items()]
        if all(k is ck and v is cv for k, v, ck, cv in pairs):
            return value
        return {ck: cv for _k, _v, ck, cv in pairs}
    if isinstance(value, list):
        items = [storable(v) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


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
