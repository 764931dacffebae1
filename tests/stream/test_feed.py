"""EventFeed: replay then live, exactly once and in order, bounded, over in-memory storage."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from convo.cluster.local import LocalEventBus
from convo.domain.conversation import ConversationMetadata
from convo.domain.events import EventSource, message_action
from convo.services.event_log import EventLog, status_update
from convo.services.streams import FEED_END, EventFeed, event_id_of
from convo.storage.memory import MemoryStorage

CID = "feedtest"


async def _setup() -> tuple[MemoryStorage, LocalEventBus, EventLog]:
    storage = MemoryStorage()
    await storage.conversations.create(ConversationMetadata(conversation_id=CID))
    bus = LocalEventBus()
    return storage, bus, EventLog(storage.events, bus)


async def _append(log: EventLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        await log.append(CID, message_action(f"m{i}", EventSource.USER))


async def _collect(feed: EventFeed, count: int, timeout: float = 5) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while len(out) < count:
            item = await feed.next()
            assert item is not FEED_END and item is not None
            assert isinstance(item, dict)
            out.append(item)
    return out


async def test_replay_after_an_id_then_live() -> None:
    storage, bus, log = await _setup()
    await _append(log, 250)
    async with EventFeed(storage.events, bus, CID, after_id=9, page_size=40) as feed:
        replayed = await _collect(feed, 240)
        assert [e["id"] for e in replayed] == list(range(10, 250))
        assert await feed.next(idle_timeout=0.01) is None  # caught up, nothing live yet
        await _append(log, 3, 250)
        await log.publish_status(CID, status_update("info", "STATUS$READY", "ready"))
        live = await _collect(feed, 4)
    assert [event_id_of(p) for p in live] == [250, 251, 252, None]
    assert live[3]["status_update"] is True
    assert feed.last_event_id == 252
    assert bus.subscriber_count(CID) == 0


class _YieldingEvents:
    """The memory event store, but each page read yields first (as a real database does) and
    records how many events were stored when it ran, so the test can see the overlap."""

    def __init__(self, storage: MemoryStorage) -> None:
        self._events = storage.events
        self.stored_at_reads: list[int] = []

    async def append(self, conversation_id: str, event: Any, *, token: int | None = None) -> Any:
        return await self._events.append(conversation_id, event, token=token)

    async def list(self, conversation_id: str, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        self.stored_at_reads.append(await self._events.last_id(conversation_id) + 1)
        return await self._events.list(conversation_id, **kwargs)


async def test_events_appended_during_replay_are_seen_once() -> None:
    storage, bus, log = await _setup()
    await _append(log, 100)
    events = _YieldingEvents(storage)
    feed = EventFeed(events, bus, CID, page_size=7)  # type: ignore[arg-type]
    feed.open()

    async def write_while_replaying() -> None:
        for i in range(100, 200):
            await log.append(CID, message_action(f"m{i}", EventSource.USER))
            await asyncio.sleep(0)

    writer = asyncio.create_task(write_while_replaying())
    got = await _collect(feed, 200)
    await writer
    assert [e["id"] for e in got] == list(range(200))
    # the replay really overlapped the appends: some page was read while they were going on
    assert any(100 < count < 200 for count in events.stored_at_reads), events.stored_at_reads
    assert await feed.next(idle_timeout=0.01) is None
    feed.close()
    assert await feed.next() is FEED_END


async def test_out_of_order_publishing_is_filled_from_the_store() -> None:
    storage, bus, _log = await _setup()
    feed = EventFeed(storage.events, bus, CID)
    feed.open()
    assert await feed.next(idle_timeout=0.01) is None
    first = await storage.events.append(CID, message_action("a", EventSource.USER))
    second = await storage.events.append(CID, message_action("b", EventSource.USER))
    await bus.publish(CID, second.to_wire())  # published before the earlier event
    await bus.publish(CID, first.to_wire())
    got = await _collect(feed, 2)
    assert [e["id"] for e in got] == [0, 1]
    assert await feed.next(idle_timeout=0.01) is None  # the late duplicate was dropped
    feed.close()


async def test_a_slow_consumer_is_cut_off_with_a_resume_point() -> None:
    storage, bus, log = await _setup()
    await _append(log, 5)
    feed = EventFeed(storage.events, bus, CID, max_queue=10)
    feed.open()
    got = await _collect(feed, 3)  # the consumer reads a little, then stalls
    await _append(log, 50, 5)  # the publisher never waits for it
    assert bus.subscriber_count(CID) == 0  # the overflowed subscription was dropped
    rest: list[Any] = []
    while (item := await feed.next()) is not FEED_END:
        rest.append(item)
    assert feed.fell_behind
    delivered = [e["id"] for e in got + rest]
    assert delivered == list(range(len(delivered)))  # in order, no gaps, no repeats
    assert feed.last_event_id == delivered[-1]
    # resuming from the resume point gives the rest, exactly once
    async with EventFeed(storage.events, bus, CID, after_id=feed.last_event_id) as again:
        tail = await _collect(again, 55 - len(delivered))
    assert [e["id"] for e in tail] == list(range(len(delivered), 55))


async def test_bus_close_ends_the_feed_without_fell_behind() -> None:
    storage, bus, _log = await _setup()
    feed = EventFeed(storage.events, bus, CID)
    feed.open()
    assert await feed.next(idle_timeout=0.01) is None
    await bus.aclose()
    assert await feed.next() is FEED_END
    assert not feed.fell_behind


async def test_async_iteration_and_bad_arguments(tmp_path: Path) -> None:
    storage, bus, log = await _setup()
    await _append(log, 3)
    feed = EventFeed(storage.events, bus, CID)
    seen = []
    async for payload in feed:
        seen.append(payload["id"])
        if len(seen) == 3:
            feed.close()
    assert seen == [0, 1, 2]
    with pytest.raises(ValueError):
        EventFeed(storage.events, bus, CID, page_size=0)
