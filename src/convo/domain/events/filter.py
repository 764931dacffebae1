"""Which events a search keeps: OpenHands' ``EventFilter``, applied as OpenHands applies it.

An event is kept when it passes every criterion that is set:

- ``include_types`` / ``exclude_types``: event classes named as OpenHands names them
  (``MessageAction``, ``CmdOutputObservation``; ``Action`` or ``Observation`` for a whole
  family), matched as ``isinstance``;
- ``source``: ``user``, ``agent`` or ``environment``;
- ``start_date`` / ``end_date``: compared with the event's ``timestamp`` as strings (both
  ISO 8601), inclusive; an event without a timestamp passes;
- ``exclude_hidden``: drops commands (and their output) marked ``hidden``;
- ``query``: a case-insensitive substring of the event's JSON (``json.dumps`` of its wire
  form). Non-ASCII text is matched as written, where OpenHands, which escapes it, never
  matches a non-ASCII query.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from convo.domain.events.base import Event


@functools.cache
def _event_classes() -> dict[str, type[Event]]:
    """Every event class by name (the package's modules, all imported with it, declare them)."""
    found: dict[str, type[Event]] = {}
    pending: list[type[Event]] = [Event]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.__name__, cls)
        pending.extend(cls.__subclasses__())
    return found


def event_class(name: str) -> type[Event] | None:
    """The event class OpenHands calls ``name`` (``Event``, ``Action``, ``CmdRunAction``, ...),
    or None when there is none."""
    return _event_classes().get(name)


@dataclass(frozen=True)
class EventFilter:
    exclude_hidden: bool = False
    query: str | None = None
    include_types: tuple[type[Event], ...] | None = None
    exclude_types: tuple[type[Event], ...] | None = None
    source: str | None = None
    start_date: str | None = None
    end_date: str | None = None

    def include(self, event: Event) -> bool:
        if self.include_types and not isinstance(event, self.include_types):
            return False
        if self.exclude_types is not None and isinstance(event, self.exclude_types):
            return False
        if self.source and event.source.value != self.source:
            return False
        timestamp = event.timestamp or None
        if self.start_date and timestamp is not None and timestamp < self.start_date:
            return False
        if self.end_date and timestamp is not None and timestamp > self.end_date:
            return False
        if self.exclude_hidden and getattr(event, "hidden", False):
            return False
        if self.query:
            text = json.dumps(event.to_wire(), ensure_ascii=False).lower()
            if self.query.lower() not in text:
                return False
        return True
