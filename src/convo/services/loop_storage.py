"""The database as the conversations' loops reach it: a few of their calls at a time.

Hundreds of running loops each append an event every few milliseconds. Left alone they fill
the database's queue: on SQLite every write waits its turn at the one write gate, behind
every loop's append, and on PostgreSQL the loops hold every pooled connection. A user's
create, start, message or list then waits for all of them (seconds at 200 loops). Through
``LoopStorage`` at most ``LOOP_CALLS_AT_ONCE`` loop calls are in the database at once; the
others wait here, in order, and API requests go straight to the database past them. The
loops lose no throughput on SQLite (its writes are serial anyway) and little on PostgreSQL.
"""

from __future__ import annotations

import asyncio

from convo.domain.conversation import UserSettings
from convo.domain.events import Event
from convo.storage.base import EventStore, SettingsStore

LOOP_CALLS_AT_ONCE = 4


class LoopEvents:
    """An EventStore whose calls wait for the loops' share of the database."""

    def __init__(self, store: EventStore, share: asyncio.Semaphore) -> None:
        self._store = store
        self._share = share

    async def append(
        self, conversation_id: str, event: Event, *, token: int | None = None
    ) -> Event:
        async with self._share:
            return await self._store.append(conversation_id, event, token=token)

    async def list(
        self,
        conversation_id: str,
        *,
        start_id: int = 0,
        end_id: int | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> list[Event]:
        async with self._share:
            return await self._store.list(
                conversation_id, start_id=start_id, end_id=end_id, reverse=reverse, limit=limit
            )

    async def last_id(self, conversation_id: str) -> int:
        async with self._share:
            return await self._store.last_id(conversation_id)


class LoopStorage:
    """What the loops read and write, sharing ``LOOP_CALLS_AT_ONCE`` database calls."""

    def __init__(self, events: EventStore, settings: SettingsStore) -> None:
        self._share = asyncio.Semaphore(LOOP_CALLS_AT_ONCE)
        self.events = LoopEvents(events, self._share)
        self._settings = settings

    async def load_settings(self, user_id: str | None) -> UserSettings | None:
        async with self._share:
            return await self._settings.load_settings(user_id)
