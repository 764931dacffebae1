"""Live events across servers: the ``EventBus`` over Redis pub/sub.

The server that runs a conversation publishes its events to the conversation's channel;
every server with listeners subscribes to it once and hands each payload to its own
listeners' bounded queues (``LocalSubscription``, as in one process). In cluster mode every
listener, on the owning server too, receives through Redis: one path, one order.

What keeps a stream gap-free and duplicate-free (with ``services.streams.EventFeed``, which
drops ids it has and fills jumps from the store):

- a subscription is ``ready()`` only once Redis confirmed it, and the feed reads the store
  after that: an event stored after the read began is published after Redis has this
  server's subscription, so it arrives;
- when the connection breaks or goes silent, every subscription that was ready ends as
  overflowed: its stream resumes from the store by event id. One that cannot become ready
  (Redis is down) ends the same way after ``ready_timeout`` seconds;
- publishing never fails or waits for an append: payloads go to a bounded queue that one
  task publishes in order, pipelined. When Redis refuses them (logged once per outage) or
  the queue is full, the last stored event of each conversation concerned is published again
  once Redis takes payloads again: a listener that missed events sees the id jump and fills
  the gap from the store, so it is never left waiting for an event that was lost. Status
  updates carry no id and may be lost, as their name says.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict, deque
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import ConnectionPool

from convo.aio import cancel_and_wait
from convo.cluster.base import Payload
from convo.cluster.local import LocalSubscription
from convo.cluster.redis_counts import RemoteListeners
from convo.cluster.redis_keys import EVENTS_CHANNEL, events_channel
from convo.cluster.redis_listener import REDIS_FAILURES, RedisListener

logger = logging.getLogger(__name__)

_CHANNEL_PREFIX = EVENTS_CHANNEL.split("{", 1)[0]
_BATCH = 200


class RedisSubscription(LocalSubscription):
    """A bounded queue filled from Redis; ready once Redis confirmed the subscription."""

    def __init__(
        self, bus: RedisEventBus, conversation_id: str, max_queue: int, ready_timeout: float
    ) -> None:
        super().__init__(bus, conversation_id, max_queue)
        self._ready = asyncio.Event()
        self._ready_timeout = ready_timeout

    @property
    def is_ready(self) -> bool:
        return self._ready.is_set()

    def mark_ready(self) -> None:
        self._ready.set()

    async def ready(self) -> None:
        if self.closed:
            return
        try:
            async with asyncio.timeout(self._ready_timeout):
                await self._ready.wait()
        except TimeoutError:
            self.lose()  # Redis is unreachable: the reader resumes from the store later


class RedisEventBus:
    def __init__(
        self,
        client: Redis,
        listener_pool: ConnectionPool,
        *,
        max_pending: int = 10_000,
        ready_timeout: float = 5.0,
        ping_interval: float = 1.0,
        silent_after: float = 3.0,
        count_interval: float = 2.0,
    ) -> None:
        self._client = client
        self._ready_timeout = ready_timeout
        self._subscribers: defaultdict[str, set[RedisSubscription]] = defaultdict(set)
        self._listener = RedisListener(
            listener_pool,
            "events",
            on_message=self._deliver,
            on_ready=self._channel_ready,
            on_lost=self._connection_lost,
            ping_interval=ping_interval,
            silent_after=silent_after,
        )
        self._publisher = _Publisher(client, max_pending)
        self._remote = RemoteListeners(
            client,
            lambda conversation_id: self._listener.is_live(events_channel(conversation_id)),
            count_interval,
        )

    def start(self) -> None:
        self._listener.start()
        self._publisher.start()
        self._remote.start()

    # --- EventBus -----------------------------------------------------------------------
    async def publish(self, conversation_id: str, payload: Payload) -> None:
        self._publisher.put(conversation_id, payload)
        self._remote.published(conversation_id)

    def subscribe(self, conversation_id: str, *, max_queue: int = 1000) -> RedisSubscription:
        subscription = RedisSubscription(self, conversation_id, max_queue, self._ready_timeout)
        channel = events_channel(conversation_id)
        self._subscribers[conversation_id].add(subscription)
        self._listener.want(channel)  # again, if its last subscription just ended
        if self._listener.is_live(channel):  # no UNSUBSCRIBE was sent since it was confirmed
            subscription.mark_ready()
        return subscription

    def discard(self, conversation_id: str, subscription: LocalSubscription) -> None:
        subscribers = self._subscribers.get(conversation_id)
        if subscribers is None:
            return
        if isinstance(subscription, RedisSubscription):
            subscribers.discard(subscription)
        if not subscribers:
            del self._subscribers[conversation_id]
            self._listener.drop(events_channel(conversation_id))

    def subscriber_count(self, conversation_id: str) -> int:
        """This server's listeners of the conversation, plus one for each other server with
        listeners of it, when this server publishes its events (counted every few seconds)."""
        here = len(self._subscribers.get(conversation_id, ()))
        return here + self._remote.elsewhere(conversation_id)

    async def aclose(self) -> None:
        for subscribers in list(self._subscribers.values()):
            for subscription in list(subscribers):
                subscription.close()
        await self._listener.aclose()
        await self._publisher.aclose()
        await self._remote.aclose()

    # --- from the listener --------------------------------------------------------------
    def _deliver(self, channel: str, data: bytes) -> None:
        subscribers = self._subscribers.get(channel.removeprefix(_CHANNEL_PREFIX))
        if not subscribers:
            return
        try:
            payload = json.loads(data)
        except ValueError:
            logger.warning("dropped a payload that is not JSON from %s", channel)
            return
        if not isinstance(payload, dict):
            return
        for subscription in list(subscribers):
            subscription.offer(payload)

    def _channel_ready(self, channel: str) -> None:
        for subscription in self._subscribers.get(channel.removeprefix(_CHANNEL_PREFIX), ()):
            subscription.mark_ready()

    def _connection_lost(self) -> None:
        """Whatever was published while the connection was down is missed: every ready
        subscription ends as overflowed; those not ready yet wait for the next connection."""
        for subscribers in list(self._subscribers.values()):
            for subscription in list(subscribers):
                if subscription.is_ready:
                    subscription.lose()


class _Publisher:
    """Publishes payloads in the order given, from one task, never blocking the caller."""

    def __init__(self, client: Redis, max_pending: int) -> None:
        self._client = client
        self._max_pending = max_pending
        self._pending: deque[tuple[str, int | None, bytes]] = deque()
        self._missed: dict[str, tuple[int, bytes]] = {}  # last stored event not delivered
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()  # nothing queued, nothing being sent
        self._drained.set()
        self._task: asyncio.Task[None] | None = None
        self._down_since: float | None = None
        self._failures = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="redis-publisher:events")

    def put(self, conversation_id: str, payload: Payload) -> None:
        event_id = _event_id(payload)
        data = json.dumps(payload, separators=(",", ":"), default=str).encode()
        if len(self._pending) >= self._max_pending:
            self._miss(*self._pending.popleft())
        self._pending.append((conversation_id, event_id, data))
        self._drained.clear()
        self._wake.set()

    async def aclose(self) -> None:
        """Publish what is queued (for a moment), then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        if self._down_since is None:  # the last events of stopped loops still go out
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._drained.wait()
        await cancel_and_wait(task)

    def _miss(self, conversation_id: str, event_id: int | None, data: bytes) -> None:
        if event_id is None:
            return  # a status update: transient
        known = self._missed.get(conversation_id)
        if known is None or known[0] < event_id:
            self._missed[conversation_id] = (event_id, data)

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._drained.set()
                # events missed while Redis was down are published again within a second
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0 if self._missed else None):
                        await self._wake.wait()
            self._wake.clear()
            if not self._pending and not self._missed:
                continue
            batch = [self._pending.popleft() for _ in range(min(_BATCH, len(self._pending)))]
            if not await self._send(batch):
                await asyncio.sleep(0.2)  # Redis is down: do not spin

    async def _send(self, batch: list[tuple[str, int | None, bytes]]) -> bool:
        again = [(cid, event_id, data) for cid, (event_id, data) in self._missed.items()]
        self._missed.clear()
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for conversation_id, _, data in again + batch:
                    pipe.publish(events_channel(conversation_id), data)
                await pipe.execute()
        except Exception as exc:  # Redis failures, and anything else: the task goes on
            if not isinstance(exc, REDIS_FAILURES):
                logger.exception("publishing live events failed unexpectedly")
            for item in again + batch:
                self._miss(*item)
            self._failed(exc)
            return False
        self._back()
        return True

    def _failed(self, exc: BaseException) -> None:
        self._failures += 1
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.error(
                "publishing live events to Redis failed: %s (logged once until it is back; "
                "listeners resume from the store)",
                exc or type(exc).__name__,
            )

    def _back(self) -> None:
        if self._down_since is not None:
            logger.warning(
                "publishing live events to Redis works again after %.1f s (%d failures)",
                time.monotonic() - self._down_since,
                self._failures,
            )
            self._down_since, self._failures = None, 0


def _event_id(payload: Payload) -> int | None:
    value: Any = payload.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None
