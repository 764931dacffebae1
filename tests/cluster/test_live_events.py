"""Live events across nodes: a client on node C (Socket.IO and SSE) sees every event of a loop
on node A, in order, without a gap or a repeat; Redis cut for a few seconds and then restarted
empty changes nothing for the loops, and the listeners resume where they were."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from bench.cluster_nodes import Cluster, step_count

from tests.cluster.cluster import (
    SCRIPTS,
    ClusterRig,
    check_steps,
    finished,
    others,
    owner_of,
    wait,
)
from tests.cluster.conftest import CLUSTER
from tests.cluster.listeners import Listener, SocketListener, SseListener

pytestmark = CLUSTER


@asynccontextmanager
async def _listening(base_url: str, conversation_id: str) -> AsyncIterator[list[Listener]]:
    listeners: list[Listener] = [
        SseListener(base_url, conversation_id),
        SocketListener(base_url, conversation_id),
    ]
    for listener in listeners:
        listener.start()
    try:
        yield listeners
    finally:
        for listener in listeners:
            await listener.stop()


async def _all_seen(cluster: Cluster, listeners: list[Listener], conversation_id: str) -> None:
    """Every listener got exactly the stored events, in order, each once (a socket's replay
    leaves out recall actions and the state changes before the last one, as OpenHands'
    server does)."""
    events = await cluster.events(cluster.node("A"), conversation_id)
    stored = [e["id"] for e in events]
    skipped = {  # what a socket replay may leave out
        e["id"]
        for e in events
        if e.get("observation") == "agent_state_changed" or e.get("action") == "recall"
    }
    assert stored == list(range(len(stored)))
    for listener in listeners:
        await wait(lambda listener=listener: listener.has(stored[-1]), 15, "the last event")
        if isinstance(listener, SocketListener):
            assert listener.ids == sorted(set(listener.ids)), listener.ids
            assert set(stored) - set(listener.ids) <= skipped, listener.ids
        else:
            assert listener.ids == stored, f"{type(listener).__name__}: {listener.ids}"


@pytest.mark.timeout(120)
async def test_clients_on_every_node_see_every_event_of_a_loop(cluster: Cluster) -> None:
    """Whichever node runs the loop, the clients on the two others see what its own do."""
    conversation_id = await cluster.create(cluster.node("A"), "short")
    async with contextlib.AsyncExitStack() as stack:
        listeners = [
            listener
            for node in cluster.nodes
            for listener in await stack.enter_async_context(
                _listening(node.base_url, conversation_id)
            )
        ]
        await finished(cluster, conversation_id)
        await owner_of(cluster, conversation_id)
        await asyncio.sleep(0.5)  # the state change after finish
        await _all_seen(cluster, listeners, conversation_id)
        assert [listener.connects for listener in listeners] == [1] * 6, "a stream broke"


async def _all_healthy(cluster: Cluster) -> bool:
    async with httpx.AsyncClient(timeout=5) as client:
        for node in cluster.nodes:
            if (await client.get(f"{node.base_url}/health")).status_code != 200:
                return False
    return True


@pytest.mark.timeout(150)
async def test_redis_cut_then_restarted_under_running_loops(
    cluster: Cluster, faults: ClusterRig
) -> None:
    a, b, c = (cluster.node(name) for name in "ABC")
    conversation_id = await cluster.create(a, "long")
    steps = step_count(SCRIPTS["long"])
    async with (
        _listening(c.base_url, conversation_id) as on_c,
        _listening(b.base_url, conversation_id) as on_b,
    ):
        await wait(lambda: len(cluster.lines(conversation_id)) >= 2, 30, "the task to work")

        faults.proxy.cut()  # every node loses Redis for 4 s
        before = len(cluster.lines(conversation_id))
        await asyncio.sleep(4)
        during = len(cluster.lines(conversation_id))
        faults.proxy.restore()
        assert during >= before + 2, "the loop stopped working while Redis was cut"

        await faults.redis.restart(down_seconds=1)  # back empty, on the same port
        await wait(lambda: cluster.finishes(a, conversation_id), 60, "the task to finish")
        await check_steps(cluster, conversation_id, steps)
        await asyncio.sleep(0.5)
        await _all_seen(cluster, [*on_c, *on_b], conversation_id)
    await wait(lambda: _all_healthy(cluster), 20, "every node healthy again")


@pytest.mark.timeout(120)
async def test_a_message_sent_to_another_node_while_redis_is_cut_is_answered(
    cluster: Cluster, faults: ClusterRig
) -> None:
    conversation_id = await cluster.create(cluster.node("A"), "reply")
    await finished(cluster, conversation_id)
    other = others(cluster, await owner_of(cluster, conversation_id))[0]
    faults.proxy.cut()
    try:
        async with other.client() as client:
            sent = await client.post(
                f"/api/conversations/{conversation_id}/events",
                json={"action": "message", "args": {"content": "go on"}},
            )
    finally:
        faults.proxy.restore()
    if sent.status_code == 200:  # accepted: the agent must act on it
        await finished(cluster, conversation_id, 2)
        await check_steps(cluster, conversation_id, 1)
    else:  # refused: the client knows to send it again
        assert sent.status_code == 503, sent.text
