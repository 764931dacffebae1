"""How many other servers have listeners of the conversations this server publishes.

A conversation's loop runs on one server, its listeners may be on any: the owner must not
take a conversation for unwatched (and close it when idle) while a client on another server
follows it. Every ``interval`` seconds one ``PUBSUB NUMSUB`` asks Redis how many connections
subscribe to the channels of the conversations this server published to; each server has
one such connection, so that is the number of servers listening (this one's own excluded).
The answer is cached: ``elsewhere`` never waits. While Redis is down the last answer stays.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis

from convo.aio import cancel_and_wait
from convo.cluster.redis_keys import events_channel
from convo.cluster.redis_listener import REDIS_FAILURES

logger = logging.getLogger(__name__)

_CHUNK = 500
_FORGET_AFTER = 24 * 3600.0  # a conversation silent this long, with no listener, is dropped


class RemoteListeners:
    def __init__(
        self, client: Redis, listening_here: Callable[[str], bool], interval: float
    ) -> None:
        self._client = client
        self._listening_here = listening_here  # is this server subscribed to the channel?
        self._interval = interval
        self._published: dict[str, float] = {}  # conversation id -> last publish (monotonic)
        self._elsewhere: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="redis-counts:listeners")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    def published(self, conversation_id: str) -> None:
        self._published[conversation_id] = time.monotonic()

    def elsewhere(self, conversation_id: str) -> int:
        """Other servers with listeners of the conversation, as of the last count."""
        return self._elsewhere.get(conversation_id, 0)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.count()
            except REDIS_FAILURES:
                pass  # the last count stays; the listeners log the outage
            except Exception:
                logger.exception("counting other servers' listeners failed")

    async def count(self) -> None:
        conversation_ids = list(self._published)
        counts: dict[str, int] = {}
        for start in range(0, len(conversation_ids), _CHUNK):
            chunk = conversation_ids[start : start + _CHUNK]
            answer = await self._client.pubsub_numsub(*(events_channel(c) for c in chunk))
            for conversation_id, (_, subscribers) in zip(chunk, answer, strict=True):
                here = 1 if self._listening_here(conversation_id) else 0
                counts[conversation_id] = max(0, int(subscribers) - here)
        self._elsewhere = {c: n for c, n in counts.items() if n}
        forget_before = time.monotonic() - _FORGET_AFTER
        for conversation_id, when in list(self._published.items()):
            if when < forget_before and conversation_id not in self._elsewhere:
                del self._published[conversation_id]
