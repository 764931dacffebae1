"""A server's connections to Redis in cluster mode, and what runs over them.

    redis = RedisNode(url, node_id)
    redis.start()                    # listeners connect (and reconnect) in the background
    bus, channel, wakeups = redis.bus, redis.channel, redis.wakeups
    await redis.probe(1.0)           # "ok" or "down: ..." for /health
    await redis.aclose()

Commands (PUBLISH, PING) share one client whose connections time out after
``socket_timeout`` seconds and are retried twice on a fresh connection. Each listener
(``RedisListener``) keeps one connection of its own, built from the same URL without
redis-py's retries: it must notice every break. Nothing here fails while Redis is down:
listeners reconnect, publishing is retried and logged once per outage, ``probe`` says down.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.connection import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff

from convo.cluster.redis_bus import RedisEventBus
from convo.cluster.redis_channel import RedisNodeChannel
from convo.cluster.redis_listener import REDIS_FAILURES
from convo.cluster.redis_wakeups import RedisWakeups


@dataclass(frozen=True)
class RedisOptions:
    socket_timeout: float = 2.0  # a command without an answer for this long failed
    connect_timeout: float = 2.0
    ping_interval: float = 1.0  # listeners PING this often ...
    silent_after: float = 3.0  # ... and a connection silent for this long is broken
    ready_timeout: float = 5.0  # a live stream waits this long for Redis before resuming
    max_pending: int = 10_000  # live payloads waiting to be published
    count_interval: float = 2.0  # other servers' listeners are counted this often


class RedisNode:
    def __init__(self, url: str, node_id: str, options: RedisOptions | None = None) -> None:
        options = options or RedisOptions()
        name = f"convo:{node_id}"
        self.client = Redis.from_url(
            url,
            socket_timeout=options.socket_timeout,
            socket_connect_timeout=options.connect_timeout,
            health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
            client_name=name,
        )
        self._listener_pool = ConnectionPool.from_url(
            url,
            socket_timeout=options.socket_timeout,
            socket_connect_timeout=options.connect_timeout,
            retry=Retry(NoBackoff(), 0),
            client_name=name,
        )
        self.bus = RedisEventBus(
            self.client,
            self._listener_pool,
            max_pending=options.max_pending,
            ready_timeout=options.ready_timeout,
            ping_interval=options.ping_interval,
            silent_after=options.silent_after,
            count_interval=options.count_interval,
        )
        self.channel = RedisNodeChannel(
            self.client,
            self._listener_pool,
            node_id,
            ping_interval=options.ping_interval,
            silent_after=options.silent_after,
        )

        self.wakeups = RedisWakeups(
            self.client,
            self._listener_pool,
            node_id,
            ping_interval=options.ping_interval,
            silent_after=options.silent_after,
        )

    def start(self) -> None:
        self.bus.start()
        self.channel.start()
        self.wakeups.start()

    async def probe(self, within: float) -> str:
        """``ok`` when Redis answers a PING within ``within`` seconds, else what is wrong."""
        try:
            async with asyncio.timeout(within):
                await self.client.ping()
        except TimeoutError:
            return f"down: no answer within {within:g} s"
        except REDIS_FAILURES as exc:
            return f"down: {exc or type(exc).__name__}"
        return "ok"

    async def aclose(self) -> None:
        await self.bus.aclose()
        await self.channel.aclose()
        await self.wakeups.aclose()
        await self.client.aclose()
        await self._listener_pool.disconnect()
