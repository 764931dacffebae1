"""``NodeChannel`` over Redis pub/sub: each node listens to its own channel.

A request is published to the channel of the node it is for, with an id and the asking
node's id; the handler's answer is published back to the asking node's channel with the same
id. PUBLISH answers how many connections received the message: none means no such node is
connected, and ``request`` fails at once instead of waiting out its timeout. A node whose own
channel is not subscribed (Redis is down) cannot hear answers, so it sends nothing and fails
within the timeout; a broken connection fails the requests waiting for an answer at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import ConnectionPool

from convo.aio import cancel_and_wait
from convo.cluster.channel import Body, Handler, handle_request, reply_or_raise
from convo.cluster.redis_keys import node_channel
from convo.cluster.redis_listener import REDIS_FAILURES, RedisListener
from convo.errors import NodeUnreachable

logger = logging.getLogger(__name__)


class _ConnectionLost(Exception):
    pass


class RedisNodeChannel:
    def __init__(
        self,
        client: Redis,
        listener_pool: ConnectionPool,
        node_id: str,
        *,
        ping_interval: float = 1.0,
        silent_after: float = 3.0,
    ) -> None:
        self._client = client
        self._node_id = node_id
        self._channel = node_channel(node_id)
        self._handler: Handler | None = None
        self._waiting: dict[str, asyncio.Future[Body]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._live = asyncio.Event()
        self._listener = RedisListener(
            listener_pool,
            f"node:{node_id}",
            on_message=self._received,
            on_ready=self._ready,
            on_lost=self._lost,
            ping_interval=ping_interval,
            silent_after=silent_after,
        )
        self._listener.want(self._channel)

    @property
    def node_id(self) -> str:
        return self._node_id

    def start(self) -> None:
        self._listener.start()

    def serve(self, handler: Handler) -> None:
        self._handler = handler

    async def until_listening(self) -> None:
        """Return once requests to this node reach it (its channel is subscribed)."""
        await self._live.wait()

    async def request(
        self,
        node_id: str,
        kind: str,
        body: Body,
        *,
        timeout: float,  # noqa: ASYNC109 (the remote node's deadline, not a local wait)
    ) -> Body:
        message = json.dumps({"body": body})  # a body that is not JSON fails here, as locally
        if node_id == self._node_id:
            return await self._request_here(kind, json.loads(message)["body"], timeout)
        request_id = secrets.token_hex(8)
        answer: asyncio.Future[Body] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = answer
        try:
            async with asyncio.timeout(timeout):
                await self._live.wait()  # else the answer could not be heard
                data = {
                    "type": "request",
                    "id": request_id,
                    "from": self._node_id,
                    "kind": kind,
                    "body": body,
                }
                receivers = await self._client.publish(node_channel(node_id), json.dumps(data))
                if receivers == 0:
                    raise NodeUnreachable(node_id, kind, "no such server is connected")
                result = await answer
        except TimeoutError:
            raise NodeUnreachable(node_id, kind, f"no answer within {timeout:g} s") from None
        except _ConnectionLost:
            raise NodeUnreachable(node_id, kind, "the connection to Redis broke") from None
        except REDIS_FAILURES as exc:
            raise NodeUnreachable(node_id, kind, f"Redis: {exc}") from None
        finally:
            self._waiting.pop(request_id, None)
        return reply_or_raise(node_id, kind, result)

    async def _request_here(self, kind: str, body: Body, within: float) -> Body:
        task = self._spawn(handle_request(self._node_id, self._handler, kind, body), kind)
        done, _ = await asyncio.wait({task}, timeout=within)
        if not done:
            raise NodeUnreachable(self._node_id, kind, f"no answer within {within:g} s")
        if task.cancelled():
            raise NodeUnreachable(self._node_id, kind, "the server shut down")
        return reply_or_raise(self._node_id, kind, task.result())

    async def aclose(self) -> None:
        self._handler = None
        await self._listener.aclose()
        self._lost()
        await cancel_and_wait(*self._tasks)

    # --- from the listener --------------------------------------------------------------
    def _received(self, channel: str, data: bytes) -> None:  # noqa: ARG002 (one channel)
        try:
            message = json.loads(data)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if message.get("type") == "reply":
            waiting = self._waiting.get(str(message.get("id")))
            answer = message.get("answer")
            if waiting is not None and not waiting.done() and isinstance(answer, dict):
                waiting.set_result(answer)
        elif message.get("type") == "request":
            kind = str(message.get("kind"))
            self._spawn(self._answer(message, kind), kind)

    def _ready(self, channel: str) -> None:  # noqa: ARG002 (one channel)
        self._live.set()

    def _lost(self) -> None:
        self._live.clear()
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_exception(_ConnectionLost())

    # --- answering ----------------------------------------------------------------------
    def _spawn(self, coroutine: Any, kind: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine, name=f"node-request:{self._node_id}:{kind}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("answering a request failed", exc_info=task.exception())

    async def _answer(self, message: dict[str, Any], kind: str) -> None:
        body = message.get("body")
        answer = await handle_request(
            self._node_id, self._handler, kind, body if isinstance(body, dict) else {}
        )
        reply = {"type": "reply", "id": message.get("id"), "answer": answer}
        try:
            data = json.dumps(reply)
        except (TypeError, ValueError):
            logger.error("the answer to a %r request is not JSON", kind)
            error = {"type": "BadReply", "message": "the answer is not JSON"}
            data = json.dumps({**reply, "answer": {"error": error}})
        with contextlib.suppress(*REDIS_FAILURES):  # the asking node times out
            await self._client.publish(node_channel(str(message.get("from"))), data)
