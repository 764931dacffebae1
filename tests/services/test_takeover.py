"""Two nodes in one process: two ConversationManagers on one PostgreSQL database, each with
its own data dir, talking over the in-process node channel (cluster mode).

A node "freezes" here as SIGSTOP would leave it: its lease keeper stops (its leases expire)
while its loop stays where it was; it "wakes" when its keeper runs again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from convo.agent.failures import ERROR_INTERRUPTED
from convo.cluster.channel import LocalNodeChannel, LocalNodeNetwork
from convo.cluster.local import LocalEventBus
from convo.domain.conversation import AgentState, ConversationStatus
from convo.domain.events import Event
from convo.llm.base import LLMClient, LLMConfig
from convo.llm.scripted import ScriptedLLM, tool_response
from convo.services.conversation_stops import TOO_MANY
from convo.services.conversations import ConversationManager, NewConversation
from convo.services.ownership import LeaseOwnership
from convo.services.stopping import StopResult
from convo.storage import open_storage
from convo.storage.base import Storage
from tests.services.conftest import FakeSandboxFactory, agent_states, make_settings, wait_until
from tests.storage.conftest import fresh_postgres_database

LEASE = 0.9  # seconds: renewed every 0.3 s, taken over soon after it expires
FINISH = tool_response("finish", {"message": "done"})
SLEEP = tool_response("execute_bash", {"command": "sleep 3"})


@dataclass
class Node:
    name: str
    manager: ConversationManager
    sandboxes: FakeSandboxFactory
    channel: LocalNodeChannel
    storage: Storage

    @property
    def ownership(self) -> LeaseOwnership:
        assert isinstance(self.manager.ownership, LeaseOwnership)
        return self.manager.ownership


@pytest.fixture
async def cluster_url(postgres_url: str) -> AsyncIterator[str]:
    async with fresh_postgres_database(postgres_url) as url:
        storage = open_storage(url)
        try:
            await storage.migrate()
        finally:
            await storage.aclose()
        yield url


class Cluster:
    def __init__(self, url: str, tmp_path: Path, stack: AsyncExitStack) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.stack = stack
        self.network = LocalNodeNetwork()

    async def node(
        self, name: str, responses: list[Any], *, delay: float = 0.0, **settings: Any
    ) -> Node:
        storage = open_storage(self.url)
        self.stack.push_async_callback(storage.aclose)
        llm = ScriptedLLM(responses)

        def factory(_config: LLMConfig) -> LLMClient:
            return llm

        values: dict[str, Any] = {
            "database_url": self.url,
            "redis_url": "redis://127.0.0.1:9/0",  # cluster mode; these tests reach no Redis
            "lease_seconds": LEASE,
            "workspaces_dir": self.tmp_path / "workspaces",
            "stop_timeout_seconds": 5,
            **settings,
        }
        sandboxes = FakeSandboxFactory(self.tmp_path / "workspaces", delay_seconds=delay)
        channel = self.network.channel(f"node-{name}")
        self.stack.push_async_callback(channel.aclose)
        manager = ConversationManager(
            settings=make_settings(self.tmp_path / name, **values),
            storage=storage,
            bus=LocalEventBus(),
            sandbox_factory=sandboxes,
            llm_factory=factory,
            node_id=f"node-{name}",
            channel=channel,
        )
        await self.stack.enter_async_context(manager)
        return Node(name, manager, sandboxes, channel, storage)


@pytest.fixture
async def cluster(cluster_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    async with AsyncExitStack() as stack:
        yield Cluster(cluster_url, tmp_path, stack)


async def history(node: Node, conversation_id: str) -> list[Event]:
    return await node.manager.event_log.history(conversation_id)


async def finished(node: Node, conversation_id: str) -> bool:
    return AgentState.FINISHED.value in agent_states(await history(node, conversation_id))


async def test_a_frozen_owner_is_taken_over_and_appends_nothing_when_it_wakes(
    cluster: Cluster,
) -> None:
    a = await cluster.node("a", [SLEEP, FINISH], delay=3.0)
    b = await cluster.node("b", [FINISH])
    conversation_id = await a.manager.create(None, NewConversation(initial_user_msg="go"))
    await a.manager.start(conversation_id, None)
    running = a.manager.running_conversations()[0]
    await wait_until(lambda: running.pending_action is not None, timeout=10)
    action_id = running.pending_action
    await a.ownership.aclose()  # frozen: no more renewals; its command goes on

    await wait_until(lambda: b.manager.is_running(conversation_id), timeout=LEASE * 4)
    for _ in range(100):
        if await finished(b, conversation_id):
            break
        await asyncio.sleep(0.1)
    assert await finished(b, conversation_id)

    # a's command ends (3 s): its result would be a's next write, and is refused
    await wait_until(lambda: not a.manager.is_running(conversation_id), timeout=10)
    assert a.sandboxes.created[0].closed
    events = await history(b, conversation_id)
    assert [e.id for e in events] == list(range(len(events)))  # gap-free
    answers = [e for e in events if e.cause == action_id and e.observation is not None]
    assert len(answers) == 1  # b's "interrupted" result only
    assert answers[0].to_wire()["extras"]["error_id"] == ERROR_INTERRUPTED
    assert len(a.sandboxes.created[0].commands) == 1
    assert b.sandboxes.created[0].commands == []  # the cut-off command is not run again


async def test_a_woken_owner_stops_its_loop_and_sandbox_as_soon_as_it_notices(
    cluster: Cluster,
) -> None:
    a = await cluster.node("a", [SLEEP, FINISH], delay=30.0)
    b = await cluster.node("b", [FINISH])
    conversation_id = await a.manager.create(None, NewConversation(initial_user_msg="go"))
    await a.manager.start(conversation_id, None)
    running = a.manager.running_conversations()[0]
    await wait_until(lambda: running.pending_action is not None, timeout=10)
    await a.ownership.aclose()  # frozen
    await wait_until(lambda: b.manager.is_running(conversation_id), timeout=LEASE * 4)
    before = await history(b, conversation_id)

    assert await a.ownership.renew() == [conversation_id]  # wakes: overdue, so lost
    await wait_until(lambda: not a.manager.is_running(conversation_id), timeout=5)
    assert a.sandboxes.created[0].closed
    ids_from_b = [e.id for e in await history(b, conversation_id)]
    assert ids_from_b[: len(before)] == [e.id for e in before]
    assert b.manager.is_running(conversation_id)


async def test_concurrent_starts_on_two_nodes_make_one_loop(cluster: Cluster) -> None:
    a = await cluster.node("a", [SLEEP], delay=30.0)
    b = await cluster.node("b", [SLEEP], delay=30.0)
    conversation_id = await a.manager.create(None, NewConversation())
    statuses = await asyncio.gather(
        *(node.manager.start(conversation_id, None) for node in (a, b, a, b))
    )
    assert all(s is not ConversationStatus.STOPPED for s in statuses)
    owners = [n for n in (a, b) if n.manager.is_running(conversation_id)]
    assert len(owners) == 1
    other = b if owners[0] is a else a
    await other.manager.get_metadata(conversation_id)
    assert other.manager.status(conversation_id) is ConversationStatus.RUNNING


async def test_stop_and_messages_reach_the_owner_from_another_node(cluster: Cluster) -> None:
    a = await cluster.node("a", [FINISH, FINISH])
    b = await cluster.node("b", [])
    conversation_id = await a.manager.create(None, NewConversation(initial_user_msg="go"))
    await a.manager.start(conversation_id, None)
    for _ in range(100):
        if await finished(a, conversation_id):
            break
        await asyncio.sleep(0.05)

    stored = await b.manager.send_user_event(
        conversation_id, {"action": "message", "args": {"content": "again"}}
    )
    assert stored.id > 0 and not b.manager.is_running(conversation_id)
    await wait_until(lambda: a.manager.is_running(conversation_id), timeout=5)

    assert await b.manager.stop(conversation_id) is StopResult.STOPPED
    assert not a.manager.is_running(conversation_id)
    metadata = await b.manager.get_metadata(conversation_id)
    assert not metadata.desired_running
    assert b.manager.status(conversation_id) is ConversationStatus.STOPPED
    assert agent_states(await history(b, conversation_id))[-1] == AgentState.STOPPED.value
    assert b.sandboxes.created == []


async def test_stop_of_a_frozen_owner_revokes_its_lease(cluster: Cluster) -> None:
    a = await cluster.node("a", [SLEEP, FINISH], delay=2.0)
    b = await cluster.node("b", [])
    conversation_id = await a.manager.create(None, NewConversation(initial_user_msg="go"))
    await a.manager.start(conversation_id, None)
    running = a.manager.running_conversations()[0]
    await wait_until(lambda: running.pending_action is not None, timeout=10)
    await a.channel.aclose()  # a answers no request (frozen)

    assert await b.manager.stop(conversation_id) is StopResult.STOPPED
    stopped = await history(b, conversation_id)
    assert agent_states(stopped)[-1] == AgentState.STOPPED.value
    # a's command ends: its result is refused, its loop ends without writing
    await wait_until(lambda: not a.manager.is_running(conversation_id), timeout=10)
    assert [e.id for e in await history(b, conversation_id)] == [e.id for e in stopped]
    assert not (await b.manager.get_metadata(conversation_id)).desired_running


async def test_the_user_limit_counts_every_node(cluster: Cluster) -> None:
    a = await cluster.node("a", [SLEEP], delay=30.0, max_concurrent_conversations=1)
    b = await cluster.node("b", [SLEEP], delay=30.0, max_concurrent_conversations=1)
    first = await a.manager.create("u1", NewConversation(initial_user_msg="one"))
    second = await b.manager.create("u1", NewConversation(initial_user_msg="two"))
    await a.manager.start(first, "u1")
    await b.manager.start(second, "u1")  # over the limit: the older one, on a, is stopped

    assert b.manager.is_running(second)
    await wait_until(lambda: not a.manager.is_running(first), timeout=5)
    events = await history(a, first)
    assert any(e.to_wire().get("extras", {}).get("error_id") == TOO_MANY for e in events)
    assert not (await a.manager.get_metadata(first)).desired_running
    assert await b.storage.leases.holder(first) is None
