"""``Wakeups`` over one Redis pub/sub channel every server listens to.

``notify`` queues the hint (at most ``max_pending``; the oldest are dropped past that) and a
task of its own publishes it; failures are logged once per outage and the hint is dropped,
as a lossy hint may be. Each message names the server that sent it, which ignores its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import ConnectionPool

from convo.aio import cancel_and_wait
from convo.cluster.redis_keys import WAKEUP_CHANNEL
from convo.cluster.redis_listener import REDIS_FAILURES, RedisListener
from convo.cluster.wakeups import WakeupHandler, deliver

logger = logging.getLogger(__name__)


class RedisWakeups:
    def __init__(
        self,
        client: Redis,
        listener_pool: ConnectionPool,
        node_id: str,
        *,
        max_pending: int = 1000,
        ping_interval: float = 1.0,
        silent_after: float = 3.0,
    ) -> None:
        self._client = client
        self._node_id = node_id
        self._handlers: list[WakeupHandler] = []
        self._pending: deque[bytes] = deque(maxlen=max_pending)
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()  # nothing queued, nothing being sent
        self._drained.set()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._live = asyncio.Event()
        self._listener = RedisListener(
            listener_pool,
            "wakeups",
            on_message=self._received,
            on_ready=lambda _channel: self._live.set(),
            on_lost=self._live.clear,
            ping_interval=ping_interval,
            silent_after=silent_after,
        )
        self._listener.want(WAKEUP_CHANNEL)

    def start(self) -> None:
        self._listener.start()
        if self._task is None:
            self._task = asyncio.create_task(self._send(), name="redis-publisher:wakeups")

    async def until_listening(self) -> None:
        """Return once wake-ups from other servers reach this one."""
        await self._live.wait()

    def notify(self, kind: str, body: dict[str, Any]) -> None:
        message = {"from": self._node_id, "kind": kind, "body": body}
        self._pending.append(json.dumps(message, default=str).encode())
        self._drained.clear()
        self._wake.set()

    def on_wakeup(self, handler: WakeupHandler) -> None:
        self._handlers.append(handler)

    async def aclose(self) -> None:
        """Send what is queued (a server shutting down tells the others it let go of its
        conversations), for a second at most, then stop."""
        await self._listener.aclose()
        task, self._task = self._task, None
        if task is not None:
            if not self._failing:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._drained.wait()
            await cancel_and_wait(task)

    def _received(self, channel: str, data: bytes) -> None:  # noqa: ARG002 (one channel)
        try:
            message = json.loads(data)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("from") == self._node_id:
            return
        body = message.get("body")
        deliver(self._handlers, str(message.get("kind")), body if isinstance(body, dict) else {})

    async def _send(self) -> None:
        while True:
            if not self._pending:
                self._drained.set()
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                data = self._pending.popleft()
                try:
                    await self._client.publish(WAKEUP_CHANNEL, data)
                except Exception as exc:  # Redis failures, and anything else: the task goes on
                    if not isinstance(exc, REDIS_FAILURES):
                        logger.exception("sending a wake-up failed unexpectedly")
                    if not self._failing:
                        logger.warning("wake-ups are not sent while Redis fails: %s", exc)
                    self._failing = True
                    continue
                if self._failing:
                    logger.info("wake-ups are sent again")
                self._failing = False
