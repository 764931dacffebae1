"""The event base classes and how an event maps to and from OpenHands' wire JSON.

An event is an :class:`Action` (``action`` + ``args``) or an :class:`Observation`
(``observation`` + ``content`` + ``extras``). Each wire kind is one frozen subclass that
declares its ``kind`` and its args (or extras) as plain fields, so code reads
``event.command`` where the JSON has ``args.command``. Declaring the subclass registers the
kind; nothing else is needed to add one.

The wire shape is produced by the model's serializer and read by its validator, so
``model_dump(mode="json")`` *is* the wire JSON and ``model_validate(wire)`` reads it. Keys a
class does not declare (written by a newer convo or OpenHands) are kept and written back:
unknown top-level keys in ``unknown_top``, unknown args/extras in ``unknown_payload``.

Whatever the LLM or a command sends, an event holds only what JSON and every store can carry
and every client can decode: a NUL or a lone UTF-16 surrogate in a string (in keys too)
becomes U+FFFD, a NaN or infinite number becomes null (:func:`storable`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from convo.domain.events.metadata import Metrics, ToolCallMetadata


class EventSource(StrEnum):
    AGENT = "agent"
    USER = "user"
    ENVIRONMENT = "environment"


def now_iso() -> str:
    """An event timestamp as OpenHands writes it: naive local time in ISO 8601."""
    return datetime.now().isoformat()


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


# --- the base ----------------------------------------------------------------------------
# Top-level keys every event may carry, in the order they are written.
COMMON_KEYS = ("id", "timestamp", "source", "message", "cause")
TRAILING_KEYS = ("tool_call_metadata", "llm_metrics")
_BOOKKEEPING = frozenset({"unknown_top", "unknown_payload"})
# Payload fields written only when set (OpenHands drops a None ``security_risk``).
_OMIT_WHEN_NONE = frozenset({"security_risk", "confirmation_state"})

ACTION_KINDS: dict[str, type[Action]] = {}
OBSERVATION_KINDS: dict[str, type[Observation]] = {}


class Event(BaseModel):
    """One entry of a conversation's event log. Storage gives each event of a conversation
    an increasing integer ``id`` from 0; an event not yet stored has ``id == -1``."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    id: int = -1
    timestamp: str = ""
    source: EventSource = EventSource.ENVIRONMENT
    message: str = ""
    cause: int | None = None
    tool_call_metadata: ToolCallMetadata | None = None
    llm_metrics: Metrics | None = None
    unknown_top: dict[str, Any] = Field(default_factory=dict)
    unknown_payload: dict[str, Any] = Field(default_factory=dict)

    # The top-level keys of this family besides the common ones, and its payload key.
    _family_keys: ClassVar[tuple[str, ...]] = ()
    _payload_key: ClassVar[str] = ""

    @property
    def action(self) -> str | None:
        """The action kind, or None for an observation."""
        return None

    @property
    def observation(self) -> str | None:
        """The observation kind, or None for an action."""
        return None

    @property
    def is_action(self) -> bool:
        return self.action is not None

    def to_wire(self) -> dict[str, Any]:
        """The JSON object sent to clients and stored."""
        return self.model_dump(mode="json")

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Event:
        """The event of the right class for a wire dict (see ``convo.domain.events.codec``)."""
        from convo.domain.events.codec import parse_event

        event = parse_event(data)
        if not isinstance(event, cls):
            raise TypeError(f"{type(event).__name__} is not a {cls.__name__}")
        return event

    def stored(self, event_id: int, timestamp: str | None = None) -> Event:
        """A copy carrying the id (and timestamp) storage gave it."""
        return self.model_copy(update={"id": event_id, "timestamp": timestamp or self.timestamp})

    # --- payload: the fields a subclass declares -----------------------------------------
    @classmethod
    def payload_fields(cls) -> tuple[str, ...]:
        base = set(Event.model_fields) | set(cls._family_keys)
        return tuple(name for name in cls.model_fields if name not in base)

    def payload(self) -> dict[str, Any]:
        """The args (action) or extras (observation) as wire JSON, unknown keys included."""
        flat = self.model_dump(mode="json", include=set(self.payload_fields()))
        value = flat.get(self._payload_key)
        return value if isinstance(value, dict) else {}

    def _payload_of(self, flat: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.payload_fields():
            value = flat.get(name)
            if value is None and name in _OMIT_WHEN_NONE:
                continue
            out[name] = value
        out.update(self.unknown_payload)
        return out

    # --- wire <-> fields -----------------------------------------------------------------
    @model_validator(mode="before")
    @classmethod
    def _read_wire(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = storable(data)
        return cls._flatten(data) if cls._is_wire(data) else data

    @classmethod
    def _is_wire(cls, data: dict[str, Any]) -> bool:
        """Wire JSON rather than field values (``action``/``observation`` or the payload)."""
        return bool(cls._payload_key) and (cls._payload_key in data or cls._kind_key() in data)

    @classmethod
    def _kind_key(cls) -> str:
        return "action" if cls._payload_key == "args" else "observation"

    @classmethod
    def _flatten(cls, data: dict[str, Any]) -> dict[str, Any]:
        top = (set(COMMON_KEYS) | set(TRAILING_KEYS) | set(cls._family_keys)) & set(
            cls.model_fields
        )
        flat: dict[str, Any] = {}
        unknown_top: dict[str, Any] = {}
        for key, value in data.items():
            if key in top:
                flat[key] = value
            elif key not in (cls._kind_key(), cls._payload_key):
                unknown_top[key] = value
        payload = data.get(cls._payload_key)
        unknown_payload: dict[str, Any] = {}
        if isinstance(payload, dict):
            declared = set(cls.payload_fields())
            for key, value in payload.items():
                if key in declared:
                    flat[key] = value
                else:
                    unknown_payload[key] = value
        elif payload is not None:
            unknown_top[cls._payload_key] = payload
        if unknown_top:
            flat["unknown_top"] = unknown_top
        if unknown_payload:
            flat["unknown_payload"] = unknown_payload
        return flat

    @model_serializer(mode="wrap")
    def _write_wire(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        flat: dict[str, Any] = handler(self)
        out = {key: flat[key] for key in COMMON_KEYS if self._writes(key, flat)}
        out.update(self._family_wire(flat))
        for key in TRAILING_KEYS:
            if self._writes(key, flat):
                out[key] = flat[key]
        out.update(self.unknown_top)
        return out

    def _writes(self, key: str, flat: dict[str, Any]) -> bool:
        """Whether a top-level key is written: OpenHands leaves out those that are None."""
        return flat.get(key) is not None

    def _family_wire(self, flat: dict[str, Any]) -> dict[str, Any]:
        return {key: flat[key] for key in self._family_keys if flat.get(key) is not None}


EventSink = Callable[[Event], Awaitable[Event]]
"""Stores an event (masks, appends, publishes) and returns it as stored, with its id."""


class Action(Event):
    """Something the agent or the user does: ``action`` + ``args`` (+ ``timeout``)."""

    kind: ClassVar[str] = ""
    timeout: float | None = None
    _family_keys: ClassVar[tuple[str, ...]] = ("timeout",)
    _payload_key: ClassVar[str] = "args"

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "kind" in cls.__dict__ and cls.kind:
            ACTION_KINDS[cls.kind] = cls

    @property
    def action(self) -> str | None:
        return self.kind

    @property
    def args(self) -> dict[str, Any]:
        return self.payload()

    def _family_wire(self, flat: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "args": self._payload_of(flat)}
        if flat.get("timeout") is not None:
            out["timeout"] = flat["timeout"]
        return out


class Observation(Event):
    """What came of an action, or news from the environment: ``observation`` + ``content`` +
    ``extras`` (+ ``success`` for commands)."""

    kind: ClassVar[str] = ""
    content: str = ""
    _family_keys: ClassVar[tuple[str, ...]] = ("content", "success")
    _payload_key: ClassVar[str] = "extras"

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "kind" in cls.__dict__ and cls.kind:
            OBSERVATION_KINDS[cls.kind] = cls

    @property
    def observation(self) -> str | None:
        return self.kind

    @property
    def extras(self) -> dict[str, Any]:
        return self.payload()

    def _family_wire(self, flat: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "observation": self.observation,
            "content": flat.get("content") or "",
            "extras": self._payload_of(flat),
        }
        if flat.get("success") is not None:
            out["success"] = flat["success"]
        return out
