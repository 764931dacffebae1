"""Requests between servers over a real Redis: the owner answers, a frozen or absent server
is unreachable within the timeout, and its errors come back by name."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from convo.errors import ConversationNotFound, NodeRequestFailed, NodeUnreachable
from tests.cluster_redis.conftest import NodeFactory, RedisServer
from tests.faults.proxy import FaultProxy


async def _serving(node: Any, name: str) -> list[tuple[str, dict[str, Any]]]:
    seen: list[tuple[str, dict[str, Any]]] = []

    async def handle(kind: str, body: dict[str, Any]) -> dict[str, Any]:
        seen.append((kind, body))
        if kind == "delete":
            raise ConversationNotFound(body["conversation_id"])
        if kind == "freeze":
            await asyncio.sleep(30)
        return {"handled_by": name, "kind": kind}

    node.channel.serve(handle)
    await asyncio.wait_for(node.channel.until_listening(), 5)
    return seen


async def test_a_request_reaches_the_named_server_and_gets_its_answer(
    redis_server: RedisServer, nodes: NodeFactory
) -> None:
    a, b, c = (nodes(redis_server.url, name) for name in "abc")
    seen = {name: await _serving(node, name) for name, node in zip("abc", (a, b, c), strict=True)}
    replies = await asyncio.gather(
        *(a.channel.request("b", "stop", {"conversation_id": f"c{i}"}, timeout=5) for i in range(5))
    )
    assert replies == [{"handled_by": "b", "kind": "stop"}] * 5
    assert sorted(body["conversation_id"] for _, body in seen["b"]) == [f"c{i}" for i in range(5)]
    assert seen["a"] == [] and seen["c"] == []
    # a request to oneself is handled in-process
    here = await a.channel.request("a", "stop", {}, timeout=5)
    assert here == {"handled_by": "a", "kind": "stop"}


async def test_a_handlers_error_comes_back_by_name(
    redis_server: RedisServer, nodes: NodeFactory
) -> None:
    a, b = nodes(redis_server.url, "a"), nodes(redis_server.url, "b")
    await _serving(b, "b")
    with pytest.raises(NodeRequestFailed) as raised:
        await a.channel.request("b", "delete", {"conversation_id": "c7"}, timeout=5)
    assert raised.value.error_type == "ConversationNotFound"
    assert "c7" in str(raised.value)


async def test_a_server_that_does_not_answer_is_unreachable_after_the_timeout(
    redis_server: RedisServer, nodes: NodeFactory
) -> None:
    a, b = nodes(redis_server.url, "a"), nodes(redis_server.url, "b")
    await _serving(b, "b")
    started = time.monotonic()
    with pytest.raises(NodeUnreachable) as raised:
        await a.channel.request("b", "freeze", {}, timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 2
    assert raised.value.node_id == "b" and raised.value.kind == "freeze"


async def test_a_server_that_is_gone_is_unreachable_at_once(
    redis_server: RedisServer, nodes: NodeFactory
) -> None:
    a = nodes(redis_server.url, "a")
    await _serving(a, "a")
    started = time.monotonic()
    with pytest.raises(NodeUnreachable):
        await a.channel.request("nobody", "stop", {}, timeout=10)
    assert time.monotonic() - started < 5  # nobody subscribed: no need to wait it out


async def test_requests_fail_within_their_timeout_while_redis_is_cut(
    redis_server: RedisServer, nodes: NodeFactory
) -> None:
    proxy = await FaultProxy("127.0.0.1", redis_server.port).start()
    try:
        a = nodes(f"redis://127.0.0.1:{proxy.port}/0", "a")
        b = nodes(redis_server.url, "b")
        await _serving(b, "b")
        assert (await a.channel.request("b", "stop", {}, timeout=5))["handled_by"] == "b"
        proxy.cut()
        with pytest.raises(NodeUnreachable):
            await a.channel.request("b", "stop", {}, timeout=0.5)
        proxy.restore()
        deadline = time.monotonic() + 10
        while True:  # a reconnects by itself
            try:
                reply = await a.channel.request("b", "stop", {}, timeout=1)
                break
            except NodeUnreachable:
                assert time.monotonic() < deadline
        assert reply["handled_by"] == "b"
    finally:
        await proxy.aclose()
