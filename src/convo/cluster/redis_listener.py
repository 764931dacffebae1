"""One pub/sub connection to Redis that knows when it may have missed a message.

redis-py's ``PubSub`` reconnects and subscribes again by itself after a connection breaks,
silently: whatever was published meanwhile is gone, and nobody is told. A gap-free stream
must be told, so ``RedisListener`` drives a plain connection itself:

- ``want(channel)`` / ``drop(channel)`` say which channels to listen to; a task of the
  listener sends the SUBSCRIBE/UNSUBSCRIBE commands, in order.
- ``on_ready(channel)`` is called once Redis confirmed a channel's subscription: from then on
  every message published to it arrives (``is_live(channel)`` tells it later).
- ``on_lost()`` is called when the connection broke, or went silent: it is sent a PING every
  ``ping_interval`` seconds, and one that heard nothing for ``silent_after`` seconds counts
  as broken. Every channel is then not live any more, and those still wanted are subscribed
  again on a new connection (reconnecting with a backoff, for as long as it takes).

Failures are logged once per outage, with one line when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import RedisError

from convo.aio import cancel_and_wait

logger = logging.getLogger(__name__)

REDIS_FAILURES = (RedisError, OSError, TimeoutError)

OnMessage = Callable[[str, bytes], None]
OnChannel = Callable[[str], None]


class _Silent(Exception):
    """The connection heard nothing, not even a PING's answer, for too long."""


class RedisListener:
    def __init__(
        self,
        pool: ConnectionPool,
        name: str,
        *,
        on_message: OnMessage,
        on_ready: OnChannel,
        on_lost: Callable[[], None],
        ping_interval: float = 1.0,
        silent_after: float = 3.0,
    ) -> None:
        self._pool = pool
        self._name = name
        self._on_message = on_message
        self._on_ready = on_ready
        self._on_lost = on_lost
        self._ping_interval = ping_interval
        self._silent_after = silent_after
        self._wanted: set[str] = set()
        self._changed = asyncio.Event()
        # the current connection's state
        self._sent: set[str] = set()  # SUBSCRIBE sent and no UNSUBSCRIBE since
        self._unconfirmed: Counter[str] = Counter()  # SUBSCRIBEs not confirmed yet
        self._live: set[str] = set()  # confirmed and still subscribed
        self._last_heard = 0.0
        self._task: asyncio.Task[None] | None = None
        self._down_since: float | None = None
        self._failures = 0

    # --- what to listen to --------------------------------------------------------------
    def want(self, channel: str) -> None:
        if channel not in self._wanted:
            self._wanted.add(channel)
            self._changed.set()

    def drop(self, channel: str) -> None:
        if channel in self._wanted:
            self._wanted.discard(channel)
            self._changed.set()

    def is_live(self, channel: str) -> bool:
        return channel in self._live

    @property
    def connected(self) -> bool:
        """Whether the connection is up (as far as the listener knows)."""
        return self._down_since is None and self._task is not None

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"redis-listener:{self._name}")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    # --- the connection -----------------------------------------------------------------
    async def _run(self) -> None:
        backoff = 0.05
        while True:
            connection = self._pool.connection_class(**self._pool.connection_kwargs)
            try:
                await connection.connect()  # type: ignore[no-untyped-call]
                backoff = 0.05
                self._back()
                await self._session(connection)
            except (*REDIS_FAILURES, _Silent) as exc:
                self._failed(exc)
            except Exception:  # a bug: keep listening rather than go deaf for good
                logger.exception("Redis listener %s failed", self._name)
            finally:
                with contextlib.suppress(*REDIS_FAILURES):
                    await connection.disconnect(nowait=True)
                self._lose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    async def _session(self, connection: AbstractConnection) -> None:
        self._last_heard = time.monotonic()
        reader = asyncio.create_task(self._read(connection), name=f"redis-read:{self._name}")
        writer = asyncio.create_task(self._write(connection), name=f"redis-write:{self._name}")
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(reader, writer)
        for task in done:
            task.result()  # raises what ended the session

    async def _read(self, connection: AbstractConnection) -> None:
        while True:
            response = await connection.read_response(timeout=math.inf, push_request=True)
            self._last_heard = time.monotonic()
            self._dispatch(response)

    def _dispatch(self, response: Any) -> None:
        if not isinstance(response, list) or len(response) < 2:
            return
        kind = response[0]
        channel = _text(response[1])
        if kind == b"message" and len(response) == 3:
            self._on_message(channel, response[2])
        elif kind == b"subscribe":
            self._unconfirmed[channel] -= 1
            if self._unconfirmed[channel] <= 0:
                del self._unconfirmed[channel]
                if channel in self._sent and channel not in self._live:
                    self._live.add(channel)
                    self._on_ready(channel)

    async def _write(self, connection: AbstractConnection) -> None:
        next_ping = time.monotonic() + self._ping_interval
        while True:
            self._changed.clear()
            await self._sync(connection)
            now = time.monotonic()
            if now >= next_ping:
                if now - self._last_heard > self._silent_after:
                    raise _Silent(f"no answer from Redis for {now - self._last_heard:.1f} s")
                await connection.send_command("PING", check_health=False)
                next_ping = now + self._ping_interval
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_ping - now)):
                    await self._changed.wait()

    async def _sync(self, connection: AbstractConnection) -> None:
        """Send what makes the subscribed channels the wanted ones."""
        to_drop = self._sent - self._wanted
        if to_drop:
            self._sent -= to_drop
            self._live -= to_drop
            await connection.send_command("UNSUBSCRIBE", *sorted(to_drop), check_health=False)
        to_add = self._wanted - self._sent
        if to_add:
            self._sent |= to_add
            self._unconfirmed.update(to_add)
            await connection.send_command("SUBSCRIBE", *sorted(to_add), check_health=False)

    def _lose(self) -> None:
        had_live = bool(self._live)
        self._sent.clear()
        self._unconfirmed.clear()
        self._live.clear()
        if had_live or self._wanted:
            self._on_lost()

    # --- one log line per outage --------------------------------------------------------
    def _failed(self, exc: BaseException) -> None:
        self._failures += 1
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.error(
                "Redis listener %s lost its connection: %s (logged once until it is back)",
                self._name,
                exc or type(exc).__name__,
            )

    def _back(self) -> None:
        if self._down_since is not None:
            logger.warning(
                "Redis listener %s is connected again after %.1f s (%d failed attempts)",
                self._name,
                time.monotonic() - self._down_since,
                self._failures,
            )
            self._down_since, self._failures = None, 0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
