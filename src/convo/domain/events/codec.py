"""Reading any event's wire JSON: the discriminated union of the registered kinds, and the
fallback for kinds (or payloads) this version does not know.

Rule: an event stored by any version of convo always loads. A payload whose kind is unknown,
or whose fields do not fit its kind's class, loads as :class:`UnknownAction` or
:class:`UnknownObservation`, which keep every key they were given and write it back as it was.
"""

from __future__ import annotations

import functools
import logging
from typing import Annotated, Any, ClassVar, Union

from pydantic import Discriminator, Field, Tag, TypeAdapter, ValidationError

from convo.domain.events import actions as _actions  # noqa: F401  (registers the kinds)
from convo.domain.events import observations as _observations  # noqa: F401
from convo.domain.events.base import (
    ACTION_KINDS,
    COMMON_KEYS,
    OBSERVATION_KINDS,
    TRAILING_KEYS,
    Action,
    Event,
    Observation,
    storable,
)

logger = logging.getLogger(__name__)

_UNKNOWN_ACTION = "action:?"
_UNKNOWN_OBSERVATION = "observation:?"
_TOP = frozenset(COMMON_KEYS) | frozenset(TRAILING_KEYS)


class _Unknown(Event):
    """Shared by the two fallbacks: every key beyond the common ones is kept verbatim, and a
    common one is written back only if it was given (or set since)."""

    _name_key: ClassVar[str]
    name: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def _is_wire(cls, data: dict[str, Any]) -> bool:
        return "raw" not in data and "name" not in data

    @classmethod
    def _flatten(cls, data: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in data.items() if k in _TOP}
        rest = {k: v for k, v in data.items() if k not in _TOP and k != cls._name_key}
        return {**kept, "name": data.get(cls._name_key), "raw": rest}

    def _writes(self, key: str, flat: dict[str, Any]) -> bool:
        return key in self.model_fields_set and flat.get(key) is not None


class UnknownAction(_Unknown, Action):
    """An action of a kind this version does not know (or whose args do not fit its class)."""

    _name_key: ClassVar[str] = "action"

    @property
    def action(self) -> str | None:
        return self.name or ""

    def payload(self) -> dict[str, Any]:
        args = self.raw.get("args")
        return args if isinstance(args, dict) else {}

    def _family_wire(self, _flat: dict[str, Any]) -> dict[str, Any]:
        return {"action": self.name, **self.raw}


class UnknownObservation(_Unknown, Observation):
    """An observation of a kind this version does not know (or whose extras do not fit)."""

    _name_key: ClassVar[str] = "observation"

    @property
    def observation(self) -> str | None:
        return self.name

    def payload(self) -> dict[str, Any]:
        extras = self.raw.get("extras")
        return extras if isinstance(extras, dict) else {}

    def _family_wire(self, _flat: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {} if self.name is None else {"observation": self.name}
        out.update(self.raw)
        return out


def _tag(value: Any) -> str:
    if isinstance(value, Event):
        kind = value.action if value.is_action else value.observation
        return f"{'action' if value.is_action else 'observation'}:{kind}"
    if isinstance(value, dict):
        if "action" in value:
            kind = value["action"]
            return f"action:{kind}" if kind in ACTION_KINDS else _UNKNOWN_ACTION
        kind = value.get("observation")
        return f"observation:{kind}" if kind in OBSERVATION_KINDS else _UNKNOWN_OBSERVATION
    return _UNKNOWN_OBSERVATION


def event_adapter() -> TypeAdapter[Any]:
    """The discriminated union of every registered kind plus the two fallbacks."""
    return _adapter(len(ACTION_KINDS), len(OBSERVATION_KINDS))


@functools.cache
def _adapter(_action_kinds: int, _observation_kinds: int) -> TypeAdapter[Any]:
    """Built again when a kind is registered (the counts are the cache key)."""
    members: list[Any] = [Annotated[c, Tag(f"action:{k}")] for k, c in ACTION_KINDS.items()]
    members += [Annotated[c, Tag(f"observation:{k}")] for k, c in OBSERVATION_KINDS.items()]
    members += [
        Annotated[UnknownAction, Tag(_UNKNOWN_ACTION)],
        Annotated[UnknownObservation, Tag(_UNKNOWN_OBSERVATION)],
    ]
    union: Any = Annotated[Union[tuple(members)], Discriminator(_tag)]  # noqa: UP007
    return TypeAdapter(union)


def parse_event(data: dict[str, Any]) -> Event:
    """The event a wire dict stands for; never fails for a dict (see the module docstring)."""
    try:
        event: Event = event_adapter().validate_python(data)
        return event
    except ValidationError as exc:
        data = storable(data)
        fallback = UnknownAction if "action" in data else UnknownObservation
        problems = [(e["loc"], e["type"]) for e in exc.errors()[:3]]
        logger.warning("Event kept as %s: %s", fallback.__name__, problems)
        return fallback.model_validate(data)
