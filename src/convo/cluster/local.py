"""In-process event bus: one set of bounded subscriber queues per conversation."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Protocol

from convo.cluster.base import Payload, SubscriptionClosed

_CLOSED: Payload = {"__closed__": True}


class SubscriptionOwner(Protocol):
    """The bus a subscription leaves when it ends."""

    def discard(self, conversation_id: str, subscription: LocalSubscription) -> None: ...


class LocalSubscription:
    """A bounded queue of payloads for one subscriber; also the queue of Redis ones."""

    def __init__(self, bus: SubscriptionOwner, conversation_id: str, max_queue: int) -> None:
        self._bus = bus
        self._conversation_id = conversation_id
        self._queue: asyncio.Queue[Payload] = asyncio.Queue(maxsize=max_queue + 1)
        self._max = max_queue
        self._overflowed = False
        self._closed = False

    @property
    def overflowed(self) -> bool:
        return self._overflowed

    @property
    def closed(self) -> bool:
        return self._closed

    async def ready(self) -> None:
        """In-process publishing reaches a subscription as soon as it exists."""

    def offer(self, payload: Payload) -> None:
        """Called by the bus; never blocks the publisher."""
        if self._closed:
            return
        if self._queue.qsize() >= self._max:
            self._overflowed = True
            self._finish()
            return
        self._queue.put_nowait(payload)

    def lose(self) -> None:
        """End as overflowed: payloads may have been missed (a broken connection)."""
        if not self._closed:
            self._overflowed = True
            self._finish()

    def _finish(self) -> None:
        self._closed = True
        self._bus.discard(self._conversation_id, self)
        self._queue.put_nowait(_CLOSED)  # one slot is always kept free for this

    async def get(self) -> Payload:
        if self._closed and self._queue.empty():
            raise SubscriptionClosed(self._overflowed)
        payload = await self._queue.get()
        if payload is _CLOSED:
            raise SubscriptionClosed(self._overflowed)
        return payload

    def close(self) -> None:
        if not self._closed:
            self._finish()


class LocalEventBus:
    """Fan-out inside one process. Publishing is synchronous enqueueing: O(subscribers)."""

    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[LocalSubscription]] = defaultdict(set)

    async def publish(self, conversation_id: str, payload: Payload) -> None:
        for subscription in list(self._subscribers.get(conversation_id, ())):
            subscription.offer(payload)

    def subscribe(self, conversation_id: str, *, max_queue: int = 1000) -> LocalSubscription:
        subscription = LocalSubscription(self, conversation_id, max_queue)
        self._subscribers[conversation_id].add(subscription)
        return subscription

    def discard(self, conversation_id: str, subscription: LocalSubscription) -> None:
        subscribers = self._subscribers.get(conversation_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[conversation_id]

    def subscriber_count(self, conversation_id: str) -> int:
        return len(self._subscribers.get(conversation_id, ()))

    async def aclose(self) -> None:
        for subscribers in list(self._subscribers.values()):
            for subscription in list(subscribers):
                subscription.close()
