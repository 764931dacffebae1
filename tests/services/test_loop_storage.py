"""The loops' share of the database: at most LOOP_CALLS_AT_ONCE of their calls are in it,
and the API's calls never wait behind the rest."""

from __future__ import annotations

import asyncio

from convo.domain.conversation import ConversationMetadata
from convo.domain.events import Event, EventSource, message_action
from convo.services.loop_storage import LOOP_CALLS_AT_ONCE, LoopStorage
from convo.storage.memory import MemoryStorage


class HeldEvents:
    """An event store whose appends wait for ``gate`` (a busy database)."""

    def __init__(self, storage: MemoryStorage) -> None:
        self._inner = storage.events
        self.gate = asyncio.Event()
        self.inside = 0
        self.most_inside = 0

    async def append(
        self, conversation_id: str, event: Event, *, token: int | None = None
    ) -> Event:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            await self.gate.wait()
            return await self._inner.append(conversation_id, event, token=token)
        finally:
            self.inside -= 1

    async def list(self, conversation_id: str, **kwargs: object) -> list[Event]:
        return await self._inner.list(conversation_id, **kwargs)  # type: ignore[arg-type]

    async def last_id(self, conversation_id: str) -> int:
        return await self._inner.last_id(conversation_id)


async def test_loops_take_a_few_calls_at_once_and_direct_calls_go_past() -> None:
    storage = MemoryStorage()
    await storage.conversations.create(ConversationMetadata(conversation_id="c"))
    held = HeldEvents(storage)
    loops = LoopStorage(held, storage.settings)
    appends = [
        asyncio.create_task(loops.events.append("c", message_action(f"{i}", EventSource.AGENT)))
        for i in range(20)
    ]
    while held.inside < LOOP_CALLS_AT_ONCE:
        await asyncio.sleep(0)
    for _ in range(10):  # the other loops stay outside, however long the database takes
        await asyncio.sleep(0)
    assert held.inside == LOOP_CALLS_AT_ONCE
    # a call straight to the store (as the API makes them) is answered while the loops wait
    assert (await storage.events.append("c", message_action("api", EventSource.USER))).id == 0
    held.gate.set()
    stored = await asyncio.gather(*appends)
    assert sorted(e.id for e in stored) == list(range(1, 21))
    assert held.most_inside == LOOP_CALLS_AT_ONCE
