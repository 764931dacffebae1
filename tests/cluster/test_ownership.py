"""One owner per conversation, whichever node is asked: concurrent starts make one loop; stop,
message and delete sent to a node that does not run the conversation reach the one that does;
the per-user limit of running conversations counts the whole cluster."""

from __future__ import annotations

import asyncio

import pytest
import socketio
from bench.cluster_nodes import Cluster
from bench.harness import ConvoServer

from tests.cluster.cluster import (
    RUNNING_LIMIT,
    check_steps,
    everywhere,
    finished,
    loop_starts,
    others,
    owner_of,
    wait,
)
from tests.cluster.conftest import CLUSTER

pytestmark = CLUSTER


async def _message(cluster: Cluster, node_name: str, conversation_id: str, text: str) -> None:
    async with cluster.node(node_name).client() as client:
        response = await client.post(
            f"/api/conversations/{conversation_id}/events",
            json={"action": "message", "args": {"content": text}},
        )
    assert response.status_code == 200, response.text


@pytest.mark.timeout(150)
async def test_concurrent_starts_on_all_nodes_make_one_loop(cluster: Cluster) -> None:
    a = cluster.node("A")
    conversation_id = await cluster.create(a, "reply")
    await wait(lambda: cluster.finishes(a, conversation_id), 30, "the first answer")
    async with a.client() as client:
        stopped = await client.post(f"/api/conversations/{conversation_id}/stop")
    assert stopped.json()["conversation_status"] == "STOPPED", stopped.text
    before = (await cluster.events(a, conversation_id))[-1]["id"]

    async def start(node_name: str) -> dict[str, object]:
        async with cluster.node(node_name).client() as client:
            response = await client.post(f"/api/conversations/{conversation_id}/start", json={})
        assert response.status_code == 200, response.text
        return dict(response.json())

    answers = await asyncio.gather(*(start(name) for name in "ABCABC"))
    assert {a["status"] for a in answers} == {"ok"}, answers
    await everywhere(cluster, conversation_id, "RUNNING")

    # one loop: it announced itself once, and a message is answered once
    await _message(cluster, "B", conversation_id, "once more")
    await finished(cluster, conversation_id, 2)
    await asyncio.sleep(1.0)  # time for a second loop, if there were one, to act on it too
    events = await check_steps(cluster, conversation_id, 1)
    assert loop_starts(events, after=before) == 1, "more than one loop started"
    assert len(cluster.owners(conversation_id)) == 1


@pytest.mark.timeout(150)
async def test_message_stop_and_delete_sent_to_other_nodes_reach_the_owner(
    cluster: Cluster,
) -> None:
    a = cluster.node("A")
    replying = await cluster.create(a, "reply")
    await finished(cluster, replying)
    owner = await owner_of(cluster, replying)
    first = others(cluster, owner)[0]

    # a message sent to another node is answered by the owner's loop
    await _message(cluster, first.name, replying, "go on")
    await finished(cluster, replying, 2)
    await check_steps(cluster, replying, 1)
    assert cluster.owners(replying) == [owner]
    # and one sent over a Socket.IO connection to the third node
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(
        f"{others(cluster, owner)[1].base_url}?conversation_id={replying}&latest_event_id=-1",
        transports=["websocket"],
        wait_timeout=10,
    )
    try:
        await sio.emit("oh_user_action", {"action": "message", "args": {"content": "more"}})
        await finished(cluster, replying, 3)
    finally:
        await sio.disconnect()
    assert cluster.owners(replying) == [owner]

    # a stop sent to another node ends the work on the owner
    working = await cluster.create(a, "endless")
    await wait(lambda: len(cluster.lines(working)) >= 2, 30, "the task to be working")
    owner = await owner_of(cluster, working)
    async with others(cluster, owner)[1].client() as client:
        stopped = await client.post(f"/api/conversations/{working}/stop")
    assert stopped.json()["conversation_status"] == "STOPPED", stopped.text
    await everywhere(cluster, working, "STOPPED")
    await wait(lambda: not owner.runs_shell_of(working), 15, "the owner to close its sandbox")
    done = len(cluster.lines(working))
    await asyncio.sleep(1.5)
    assert len(cluster.lines(working)) == done, "the stopped task went on working"

    # a delete sent to another node ends the work on the owner and removes it everywhere
    deleted = await cluster.create(a, "endless")
    await wait(lambda: len(cluster.lines(deleted)) >= 2, 30, "the task to be working")
    owner = await owner_of(cluster, deleted)
    async with others(cluster, owner)[0].client() as client:
        response = await client.delete(f"/api/conversations/{deleted}")
    assert response.status_code == 200 and response.json() is True, response.text
    await everywhere(cluster, deleted, None)
    await wait(lambda: not owner.runs_shell_of(deleted), 15, "the owner to close its sandbox")
    assert not (cluster.workspaces / deleted / "steps.log").exists()


@pytest.mark.timeout(150)
async def test_the_running_limit_counts_the_whole_cluster(cluster: Cluster) -> None:
    """Past the per-user limit, each new conversation (on any node) stops the least recently
    updated one, wherever it runs, and answers its own first message."""
    over = 3
    created = []
    for index in range(RUNNING_LIMIT + over):
        node = cluster.nodes[index % len(cluster.nodes)]
        created.append(await cluster.create(node, "reply"))
        await wait(lambda c=created[-1], n=node: cluster.finishes(n, c), 30, "its answer")
    a = cluster.node("A")

    async def at_the_limit() -> bool:
        running = await cluster.running(a) & set(created)
        return len(running) == RUNNING_LIMIT

    await wait(at_the_limit, 30, f"{RUNNING_LIMIT} running across the cluster")
    for node in cluster.nodes:
        assert await cluster.running(node) & set(created) == set(created[over:]), node.name
    for conversation_id in created:
        events = await cluster.events(a, conversation_id)
        refused = [e for e in events if e.get("observation") == "error"]
        expected = 1 if conversation_id in created[:over] else 0
        assert len(refused) == expected, f"{conversation_id}: {refused}"
    assert sum(1 for c in created if cluster.owners(c)) == RUNNING_LIMIT


@pytest.mark.timeout(120)
async def test_a_secret_saved_through_one_node_reaches_a_conversation_on_another(
    cluster: Cluster,
) -> None:
    """Every node opens what another sealed (one key for the cluster's secrets)."""
    value = "s3cret-from-node-A"
    async with cluster.node("A").client() as client:
        saved = await client.post("/api/secrets", json={"name": "CLUSTER_SECRET", "value": value})
    assert saved.status_code == 201, saved.text
    try:
        for node in cluster.nodes:
            async with node.client() as client:
                listed = await client.get("/api/secrets")
            assert listed.status_code == 200, f"{node.name}: {listed.text}"
            assert [s["name"] for s in listed.json()["custom_secrets"]] == ["CLUSTER_SECRET"]
        b = cluster.node("B")
        conversation_id = await cluster.create(b, "secret")
        await wait(lambda: cluster.finishes(b, conversation_id), 30, "the task to finish")
        assert cluster.lines(conversation_id) == [value]
    finally:
        async with cluster.node("A").client() as client:
            await client.delete("/api/secrets/CLUSTER_SECRET")


@pytest.mark.timeout(90)
async def test_a_server_without_redis_is_refused_on_the_cluster_database(
    cluster: Cluster,
) -> None:
    """It would take the cluster's conversations for its own: it must not start."""
    a = cluster.node("A")
    settings = cluster.settings("lone")
    del settings["redis_url"]
    lone = ConvoServer(cluster.root / "node-lone", settings)
    try:
        with pytest.raises(RuntimeError, match="exited at start-up"):
            await lone.start(timeout=60)
        assert "Another convo server" in lone.log_tail(50) or "cluster" in lone.log_tail(50)
    finally:
        await lone.kill()
    async with a.client() as client:
        assert (await client.get("/health")).status_code == 200
