"""The event log: mask secrets, store durably, then publish. Never publish before storing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from convo.cluster.base import EventBus
from convo.domain.events import Event, mask_secrets
from convo.storage.base import EventStore


def status_update(kind: str, message_id: str, message: str, **extra: Any) -> dict[str, Any]:
    """A transient status update as OpenHands sends it (not stored, has no event id)."""
    return {"status_update": True, "type": kind, "id": message_id, "message": message, **extra}


class EventLog:
    def __init__(self, store: EventStore, bus: EventBus) -> None:
        self._store = store
        self._bus = bus

    @property
    def bus(self) -> EventBus:
        return self._bus

    async def append(
        self,
        conversation_id: str,
        event: Event,
        secrets: Iterable[str] = (),
        *,
        token: int | None = None,
    ) -> Event:
        """``token``: the loop's lease token (cluster mode); LeaseLost once superseded."""
        stored = await self._store.append(
            conversation_id, mask_secrets(event, secrets), token=token
        )
        await self._bus.publish(conversation_id, stored.to_wire())
        return stored

    async def find_stored(
        self, conversation_id: str, event: Event, secrets: Iterable[str] = (), recent: int = 50
    ) -> Event | None:
        """The event as stored, if one of the last ``recent`` events is it (same content and
        timestamp): tells whether an append whose outcome was lost did commit."""
        wanted = mask_secrets(event, secrets).to_wire()
        wanted.pop("id", None)
        for stored in await self._store.list(conversation_id, reverse=True, limit=recent):
            wire = stored.to_wire()
            wire.pop("id", None)
            if wire == wanted:
                return stored
        return None

    async def publish_event(self, conversation_id: str, event: Event) -> None:
        """Publish an event that is stored already."""
        await self._bus.publish(conversation_id, event.to_wire())

    async def publish_status(self, conversation_id: str, payload: dict[str, Any]) -> None:
        await self._bus.publish(conversation_id, payload)

    async def history(self, conversation_id: str) -> list[Event]:
        return await self._store.list(conversation_id)
