"""Wake-ups: a hint one server sends reaches the others (not itself), and sending one never
fails or waits, Redis up or down."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from convo.cluster.wakeups import LEASE_RELEASED, LocalWakeupHub
from tests.cluster_redis.conftest import NodeFactory, RedisServer
from tests.faults.proxy import FaultProxy


def _recorder() -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    got: list[tuple[str, dict[str, Any]]] = []
    return got, lambda kind, body: got.append((kind, body))


async def test_a_wakeup_reaches_every_other_server(
    redis_server: RedisServer, nodes: NodeFactory
) -> None:
    a, b, c = (nodes(redis_server.url, name) for name in "abc")
    got = {}
    for name, node in zip("abc", (a, b, c), strict=True):
        got[name], handler = _recorder()
        node.wakeups.on_wakeup(handler)
        await asyncio.wait_for(node.wakeups.until_listening(), 5)
    a.wakeups.notify(LEASE_RELEASED, {"conversation_id": "c1"})
    async with asyncio.timeout(5):
        while not (got["b"] and got["c"]):
            await asyncio.sleep(0.01)
    assert got["b"] == got["c"] == [(LEASE_RELEASED, {"conversation_id": "c1"})]
    await asyncio.sleep(0.1)
    assert got["a"] == []


async def test_notifying_while_redis_is_down_neither_fails_nor_waits(
    redis_server: RedisServer, nodes: NodeFactory
) -> None:
    proxy = await FaultProxy("127.0.0.1", redis_server.port).start()
    try:
        a = nodes(f"redis://127.0.0.1:{proxy.port}/0", "a")
        proxy.cut()
        started = time.monotonic()
        for i in range(100):
            a.wakeups.notify(LEASE_RELEASED, {"conversation_id": f"c{i}"})
        assert time.monotonic() - started < 0.5
    finally:
        await proxy.aclose()


async def test_the_in_process_twin_delivers_to_the_others_only() -> None:
    hub = LocalWakeupHub()
    a, b = hub.node("a"), hub.node("b")
    got_a, handler_a = _recorder()
    got_b, handler_b = _recorder()
    a.on_wakeup(handler_a)
    b.on_wakeup(handler_b)
    a.notify(LEASE_RELEASED, {"conversation_id": "c1"})
    assert got_b == [(LEASE_RELEASED, {"conversation_id": "c1"})]
    assert got_a == []
    await b.aclose()
    a.notify(LEASE_RELEASED, {"conversation_id": "c2"})
    assert len(got_b) == 1


async def test_wakeups_sent_just_before_closing_still_go_out(
    redis_server: RedisServer, nodes: NodeFactory
) -> None:
    """A server shutting down tells the others it let go of its conversations."""
    a, b = nodes(redis_server.url, "a"), nodes(redis_server.url, "b")
    got, handler = _recorder()
    b.wakeups.on_wakeup(handler)
    await asyncio.wait_for(b.wakeups.until_listening(), 5)
    for i in range(20):
        a.wakeups.notify(LEASE_RELEASED, {"conversation_id": f"c{i}"})
    await a.aclose()
    async with asyncio.timeout(5):
        while len(got) < 20:
            await asyncio.sleep(0.01)
    assert [body["conversation_id"] for _, body in got] == [f"c{i}" for i in range(20)]
