"""The in-process NodeChannel: what routing code written against it may rely on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from convo.cluster.channel import LocalNodeNetwork
from convo.errors import ConversationNotFound, NodeRequestFailed, NodeUnreachable


async def test_a_request_gets_the_owning_nodes_reply() -> None:
    network = LocalNodeNetwork()
    a, b = network.channel("a"), network.channel("b")
    seen: list[tuple[str, dict[str, Any]]] = []

    async def handle(kind: str, body: dict[str, Any]) -> dict[str, Any]:
        seen.append((kind, body))
        return {"stopped": True, "by": "b"}

    b.serve(handle)
    reply = await a.request("b", "stop", {"conversation_id": "c1"}, timeout=1)
    assert reply == {"stopped": True, "by": "b"}
    assert seen == [("stop", {"conversation_id": "c1"})]
    await a.aclose()
    await b.aclose()


async def test_a_node_that_does_not_answer_in_time_is_unreachable() -> None:
    network = LocalNodeNetwork()
    a, b = network.channel("a"), network.channel("b")
    release = asyncio.Event()

    async def frozen(kind: str, body: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        return {}

    b.serve(frozen)
    with pytest.raises(NodeUnreachable) as raised:
        await a.request("b", "stop", {}, timeout=0.05)
    assert raised.value.node_id == "b" and raised.value.kind == "stop"
    with pytest.raises(NodeUnreachable):
        await a.request("gone", "stop", {}, timeout=1)
    release.set()
    await a.aclose()
    await b.aclose()


async def test_a_handlers_convo_error_reaches_the_asking_node_by_name() -> None:
    network = LocalNodeNetwork()
    a, b = network.channel("a"), network.channel("b")

    async def handle(kind: str, body: dict[str, Any]) -> dict[str, Any]:
        raise ConversationNotFound(body["conversation_id"])

    b.serve(handle)
    with pytest.raises(NodeRequestFailed) as raised:
        await a.request("b", "delete", {"conversation_id": "c9"}, timeout=1)
    assert raised.value.error_type == "ConversationNotFound"
    assert "c9" in str(raised.value)
    await a.aclose()
    await b.aclose()


async def test_bodies_must_be_json() -> None:
    network = LocalNodeNetwork()
    a, b = network.channel("a"), network.channel("b")

    async def handle(kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return body

    b.serve(handle)
    with pytest.raises(TypeError):
        await a.request("b", "echo", {"when": object()}, timeout=1)
    await a.aclose()
    await b.aclose()
