"""Requests from one server to another: how a user action reaches the node that owns its
conversation.

    channel.serve(handle)                     # on every node: answer requests addressed to it
    reply = await channel.request(owner, "stop", {"conversation_id": cid}, timeout=5)

A request names the node it is for, a ``kind`` (what to do) and a JSON body; the handler of
that node answers with a JSON object, which ``request`` returns. Delivery is at most once:

- no node answered within ``timeout`` (the node is gone or frozen, or Redis is down):
  ``NodeUnreachable``. The node may still have carried the request out; what happened is
  in the store, never in the channel.
- the handler raised: ``NodeRequestFailed``, with the exception's class name as
  ``error_type`` and, for a convo error, its message (any other error is logged on the node
  that raised it and reported without details).

A request to the node's own id is handled in-process. Bodies and replies are JSON objects;
``LocalNodeChannel`` (the in-process twin for tests) round-trips them through JSON too, so a
body that would not cross Redis does not cross it either.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from convo.aio import cancel_and_wait
from convo.errors import ConvoError, NodeRequestFailed, NodeUnreachable

logger = logging.getLogger(__name__)

Body = dict[str, Any]
Handler = Callable[[str, Body], Awaitable[Body]]


class NodeChannel(Protocol):
    @property
    def node_id(self) -> str:
        """The id requests to this node are addressed to."""

    async def request(
        self,
        node_id: str,
        kind: str,
        body: Body,
        *,
        timeout: float,  # noqa: ASYNC109 (the remote node's deadline, not a local wait)
    ) -> Body:
        """Ask ``node_id`` to handle ``kind`` with ``body``; its handler's reply.

        Raises ``NodeUnreachable`` when no answer came within ``timeout`` seconds and
        ``NodeRequestFailed`` when the handler raised."""

    def serve(self, handler: Handler) -> None:
        """Answer requests addressed to this node with ``handler(kind, body)``."""

    async def aclose(self) -> None:
        """Stop answering (handlers still running are cancelled) and release connections."""


async def handle_request(node_id: str, handler: Handler | None, kind: str, body: Body) -> Body:
    """Run ``handler`` for one request: its reply, or an error reply (``{"error": ...}``)
    that ``reply_or_raise`` turns back into ``NodeRequestFailed`` on the asking side."""
    if handler is None:
        return _error_reply("NotServing", f"server {node_id} does not take requests yet")
    try:
        reply = await handler(kind, body)
    except ConvoError as exc:
        return _error_reply(type(exc).__name__, str(exc))
    except Exception as exc:
        logger.exception("request %r failed on this server", kind)
        return _error_reply(type(exc).__name__, f"the request failed on server {node_id}")
    return {"reply": reply}


def reply_or_raise(node_id: str, kind: str, answer: Body) -> Body:
    error = answer.get("error")
    if isinstance(error, dict):
        raise NodeRequestFailed(
            node_id, kind, str(error.get("type", "Error")), str(error.get("message", ""))
        )
    reply = answer.get("reply")
    if not isinstance(reply, dict):
        raise NodeRequestFailed(node_id, kind, "BadReply", "the reply is not a JSON object")
    return reply


def _error_reply(error_type: str, message: str) -> Body:
    return {"error": {"type": error_type, "message": message}}


def _through_json(value: Body) -> Body:
    copied: Body = json.loads(json.dumps(value))
    return copied


class LocalNodeNetwork:
    """Nodes in one process: ``network.channel(node_id)`` is one node's channel."""

    def __init__(self) -> None:
        self._nodes: dict[str, LocalNodeChannel] = {}

    def channel(self, node_id: str) -> LocalNodeChannel:
        if node_id in self._nodes:
            raise ValueError(f"node {node_id} is on this network already")
        channel = LocalNodeChannel(self, node_id)
        self._nodes[node_id] = channel
        return channel

    def node(self, node_id: str) -> LocalNodeChannel | None:
        return self._nodes.get(node_id)

    def leave(self, channel: LocalNodeChannel) -> None:
        if self._nodes.get(channel.node_id) is channel:
            del self._nodes[channel.node_id]


class LocalNodeChannel:
    """The in-process twin of ``RedisNodeChannel``: same replies, errors and timeouts."""

    def __init__(self, network: LocalNodeNetwork, node_id: str) -> None:
        self._network = network
        self._node_id = node_id
        self._handler: Handler | None = None
        self._tasks: set[asyncio.Task[Body]] = set()

    @property
    def node_id(self) -> str:
        return self._node_id

    def serve(self, handler: Handler) -> None:
        self._handler = handler

    async def request(
        self,
        node_id: str,
        kind: str,
        body: Body,
        *,
        timeout: float,  # noqa: ASYNC109 (the remote node's deadline, not a local wait)
    ) -> Body:
        target = self._network.node(node_id)
        if target is None:
            raise NodeUnreachable(node_id, kind, "no such server")
        task = target.start(kind, _through_json(body))
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:  # the handler goes on, as on a remote node
            raise NodeUnreachable(node_id, kind, f"no answer within {timeout:g} s")
        if task.cancelled():
            raise NodeUnreachable(node_id, kind, "the server shut down")
        return reply_or_raise(node_id, kind, _through_json(task.result()))

    def start(self, kind: str, body: Body) -> asyncio.Task[Body]:
        """Handle one request in a task this node owns."""
        task = asyncio.create_task(
            handle_request(self._node_id, self._handler, kind, body),
            name=f"node-request:{self._node_id}:{kind}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        self._network.leave(self)
        self._handler = None
        await cancel_and_wait(*self._tasks)
