"""Coordination protocols: live event fan-out between publishers and subscribers.

Payloads are the JSON objects clients receive: stored events (with an integer ``id``) and
transient status updates (``status_update: true``). A subscription has a bounded queue; a
subscriber that falls too far behind is marked ``overflowed`` and must resume from storage
by event id, so a slow subscriber never slows the agent or the other subscribers.

A subscription may take a moment to take effect (over Redis, until the server confirms it):
``ready()`` returns once every payload published from then on will reach it, which is when a
reader may read the store without missing what is published meanwhile. A subscription that
cannot take effect (Redis is down) ends as overflowed, like one whose connection breaks.
"""

from __future__ import annotations

from typing import Any, Protocol

Payload = dict[str, Any]


class Subscription(Protocol):
    @property
    def overflowed(self) -> bool:
        """True once the queue overflowed; no further payloads are delivered."""

    async def ready(self) -> None:
        """Return once every payload published from now on will be delivered (or the
        subscription has ended: ``get`` then raises SubscriptionClosed)."""

    async def get(self) -> Payload:
        """The next payload; raises SubscriptionClosed when closed or overflowed."""

    def close(self) -> None: ...


class EventBus(Protocol):
    async def publish(self, conversation_id: str, payload: Payload) -> None: ...

    def subscribe(self, conversation_id: str, *, max_queue: int = 1000) -> Subscription: ...

    def subscriber_count(self, conversation_id: str) -> int: ...

    async def aclose(self) -> None: ...


class SubscriptionClosed(Exception):
    """The subscription ended: closed by its owner, by the bus, or because it fell behind."""

    def __init__(self, overflowed: bool) -> None:
        super().__init__("subscriber fell behind" if overflowed else "subscription closed")
        self.overflowed = overflowed
