"""Gap-free event streams: replay from the store after event id N, then live from the bus.

    async with EventFeed(store, bus, conversation_id, after_id=n) as feed:
        while not isinstance(payload := await feed.next(idle_timeout=15), FeedEnd):
            if payload is None:
                ...  # nothing for 15 s: a good moment for a keep-alive
            else:
                deliver(payload)
        if feed.fell_behind:
            ...  # tell the client to resume from feed.last_event_id

How it stays exactly-once and in order: the feed subscribes to the bus *before* it reads the
store, and waits until the subscription is in effect (``Subscription.ready``: over Redis, the
server confirmed it), so every event stored after the read began, which is published after it
is stored, by this server or another, is also in the subscription's queue. Live
payloads whose integer ``id`` is not above the last id handed out are duplicates and are
dropped; a live id that jumps ahead (two appends published out of order) is filled in from
the store first. Status updates (no integer id) pass straight through.

Memory is bounded: the store is read in pages, and the subscription's queue holds at most
``max_queue`` payloads. A consumer too slow to keep up overflows its queue; the feed then ends
with ``fell_behind`` set, and the consumer resumes from ``last_event_id`` with a new feed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from convo.cluster.base import EventBus, Payload, Subscription, SubscriptionClosed
from convo.storage.base import EventStore


class FeedEnd:
    """The marker ``EventFeed.next`` returns once the feed is over."""

    def __repr__(self) -> str:
        return "FEED_END"


FEED_END: Final = FeedEnd()

DEFAULT_PAGE_SIZE = 100
DEFAULT_MAX_QUEUE = 1000


@dataclass(frozen=True)
class StreamOptions:
    """Bounds of the live streams (Socket.IO and SSE) a server hands out."""

    page_size: int = DEFAULT_PAGE_SIZE  # events read from the store at a time
    max_queue: int = DEFAULT_MAX_QUEUE  # live payloads a subscriber may fall behind by
    keepalive_seconds: float = 15.0  # SSE comment when idle this long
    socket_backlog: int = 256  # unsent Socket.IO packets before the sender waits


def event_id_of(payload: Payload) -> int | None:
    """The stored event id of a payload, or None for a status update."""
    value: Any = payload.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


class EventFeed:
    """One consumer's view of a conversation's events: stored ones after ``after_id``, then
    live ones, each exactly once and in id order."""

    def __init__(
        self,
        store: EventStore,
        bus: EventBus,
        conversation_id: str,
        after_id: int = -1,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        if page_size < 1 or max_queue < 1:
            raise ValueError("page_size and max_queue must be positive")
        self._store = store
        self._bus = bus
        self._conversation_id = conversation_id
        self._page_size = page_size
        self._max_queue = max_queue
        # the highest event id handed out or queued in _pending
        self._cursor = max(after_id, -1)
        self._last_delivered = self._cursor
        self._pending: deque[Payload] = deque()
        # catching up from the store: until exhausted (None) or up to an id (a gap)
        self._catching_up = True
        self._catch_up_to: int | None = None
        self._held: Payload | None = None  # a live payload waiting for its gap to be filled
        self._subscription: Subscription | None = None
        self._subscribed_before_reading = False
        self._getter: asyncio.Future[Payload] | None = None
        self._ended = False
        self._fell_behind = False

    # --- lifecycle ---------------------------------------------------------------------
    def open(self) -> None:
        """Subscribe to the bus. Call before anything that must be seen live."""
        if self._subscription is None and not self._ended:
            self._subscription = self._bus.subscribe(
                self._conversation_id, max_queue=self._max_queue
            )

    def close(self) -> None:
        if self._getter is not None and not self._getter.done():
            self._getter.cancel()
        self._getter = None
        if self._subscription is not None:
            self._subscription.close()
        self._ended = True

    async def __aenter__(self) -> EventFeed:
        self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # --- state -------------------------------------------------------------------------
    @property
    def conversation_id(self) -> str:
        return self._conversation_id

    @property
    def last_event_id(self) -> int:
        """The id of the last event handed out (or ``after_id`` if none was)."""
        return self._last_delivered

    @property
    def fell_behind(self) -> bool:
        """True when the feed ended because its consumer could not keep up."""
        return self._fell_behind

    @property
    def ended(self) -> bool:
        return self._ended

    # --- reading -----------------------------------------------------------------------
    async def next(self, idle_timeout: float | None = None) -> Payload | FeedEnd | None:
        """The next payload; None if nothing came within ``idle_timeout`` seconds (the feed
        goes on); ``FEED_END`` once the feed is over (closed, or fell behind)."""
        self.open()
        while True:
            if self._pending:
                payload = self._pending.popleft()
                event_id = event_id_of(payload)
                if event_id is not None:
                    self._last_delivered = event_id
                return payload
            if self._ended:
                return FEED_END
            if self._catching_up:
                await self._read_page()
                continue
            live = await self._next_live(idle_timeout)
            if live is None:
                if self._ended:
                    continue
                return None
            self._accept(live)

    def __aiter__(self) -> EventFeed:
        return self

    async def __anext__(self) -> Payload:
        payload = await self.next()
        if isinstance(payload, FeedEnd) or payload is None:
            raise StopAsyncIteration
        return payload

    # --- internals ---------------------------------------------------------------------
    async def _read_page(self) -> None:
        if not self._subscribed_before_reading:
            assert self._subscription is not None
            await self._subscription.ready()
            self._subscribed_before_reading = True
        end_id = self._catch_up_to
        events = await self._store.list(
            self._conversation_id,
            start_id=self._cursor + 1,
            end_id=end_id,
            limit=self._page_size,
        )
        for event in events:
            if event.id > self._cursor:
                self._pending.append(event.to_wire())
                self._cursor = event.id
        reached = end_id is not None and self._cursor >= end_id
        if len(events) < self._page_size or reached:
            self._finish_catch_up()

    def _finish_catch_up(self) -> None:
        self._catching_up = False
        self._catch_up_to = None
        held, self._held = self._held, None
        if held is not None:
            held_id = event_id_of(held)
            if held_id is not None and held_id > self._cursor:
                # not in the store (yet): deliver the live copy rather than lose it
                self._pending.append(held)
                self._cursor = held_id

    def _accept(self, payload: Payload) -> None:
        event_id = event_id_of(payload)
        if event_id is None:
            self._pending.append(payload)
        elif event_id <= self._cursor:
            return  # already replayed from the store
        elif event_id == self._cursor + 1:
            self._pending.append(payload)
            self._cursor = event_id
        else:  # a gap: fill it from the store, where everything published already is
            self._catching_up = True
            self._catch_up_to = event_id
            self._held = payload

    async def _next_live(self, idle_timeout: float | None) -> Payload | None:
        subscription = self._subscription
        assert subscription is not None
        if self._getter is None:
            self._getter = asyncio.ensure_future(subscription.get())
        getter = self._getter
        if idle_timeout is not None:
            done, _ = await asyncio.wait({getter}, timeout=idle_timeout)
            if not done:
                return None  # the same get stays pending for the next call: nothing is lost
        else:
            await asyncio.wait({getter})
        self._getter = None
        try:
            return getter.result()
        except SubscriptionClosed as closed:
            self._fell_behind = closed.overflowed
            self.close()
            return None
