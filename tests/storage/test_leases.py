"""Conversation leases and fencing, on SQLite, PostgreSQL and in memory.

Several "nodes" are several storage objects over one database (on SQLite several engines on
one file, on PostgreSQL several connection pools), as separate servers would be.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from convo.domain.conversation import ConversationMetadata
from convo.domain.events import Event, EventSource, message_action
from convo.errors import LeaseLost, RecordNotFound
from convo.storage import open_storage
from convo.storage.base import Storage
from convo.storage.memory import MemoryStorage
from tests.storage.conftest import database_url

SHORT = 0.3  # a lease that expires within the test
LONG = 60.0


@pytest.fixture(params=["sqlite", "postgres", "memory"])
async def nodes(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[list[Storage]]:
    """Three storages over one database."""
    if request.param == "memory":
        shared = MemoryStorage()
        yield [shared, shared, shared]
        return
    postgres_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    async with database_url(request.param, tmp_path, postgres_url) as url:
        storages = [open_storage(url) for _ in range(3)]
        try:
            await storages[0].migrate()
            yield list(storages)
        finally:
            for storage in storages:
                await storage.aclose()


async def create(storage: Storage, conversation_id: str, user_id: str = "u1") -> str:
    await storage.conversations.create(
        ConversationMetadata(conversation_id=conversation_id, user_id=user_id)
    )
    return conversation_id


def message(text: str) -> Event:
    return message_action(text, EventSource.AGENT)


async def test_a_stale_token_is_refused_and_nothing_is_written(nodes: list[Storage]) -> None:
    a, b, _ = nodes
    cid = await create(a, "c1")
    first = (await a.leases.acquire(cid, "node-a", SHORT)).lease
    assert first is not None
    await a.events.append(cid, message("from a"), token=first.token)
    await asyncio.sleep(SHORT + 0.2)  # node a froze past its lease
    second = (await b.leases.acquire(cid, "node-b", LONG)).lease
    assert second is not None and second.token > first.token

    with pytest.raises(LeaseLost):
        await a.events.append(cid, message("late from a"), token=first.token)
    with pytest.raises(LeaseLost):
        await a.conversations.update_fields(cid, token=first.token, title="late title")
    stored = await b.events.append(cid, message("from b"), token=second.token)
    await b.conversations.update_fields(cid, token=second.token, title="b's title")

    events = await b.events.list(cid)
    assert [e.message for e in events] == ["from a", "from b"]
    assert [e.id for e in events] == [0, 1] and stored.id == 1
    assert (await b.conversations.get(cid)).title == "b's title"


async def test_writes_without_a_token_are_not_fenced(nodes: list[Storage]) -> None:
    a, b, _ = nodes
    cid = await create(a, "c1")
    lease = (await a.leases.acquire(cid, "node-a", LONG)).lease
    assert lease is not None
    await b.events.append(cid, message("a user's message, stored by any node"))
    await b.conversations.update_fields(cid, title="renamed")
    assert (await a.events.last_id(cid)) == 0


async def test_a_fenced_write_to_a_missing_conversation_is_not_found(nodes: list[Storage]) -> None:
    with pytest.raises(RecordNotFound):
        await nodes[0].events.append("missing", message("x"), token=1)
    with pytest.raises(RecordNotFound):
        await nodes[0].leases.acquire("missing", "node-a", LONG)


async def test_concurrent_acquires_give_one_owner(nodes: list[Storage]) -> None:
    cid = await create(nodes[0], "c1")
    results = await asyncio.gather(
        *(
            nodes[i % 3].leases.acquire(cid, f"node-{i}", LONG)
            for i in range(9)  # three per node
        )
    )
    winners = [r.lease for r in results if r.lease is not None]
    assert len(winners) == 1
    owner = winners[0].owner
    assert all(r.holder == owner for r in results if r.lease is None)
    assert await nodes[1].leases.holder(cid) == owner


async def test_tokens_grow_at_every_acquire_takeover_and_revoke(nodes: list[Storage]) -> None:
    a, b, c = nodes
    cid = await create(a, "c1")
    tokens = []
    for storage, owner in ((a, "node-a"), (a, "node-a"), (b, "node-b")):
        if owner == "node-b":
            await a.leases.release(cid, tokens[-1])
        lease = (await storage.leases.acquire(cid, owner, LONG)).lease
        assert lease is not None
        tokens.append(lease.token)
    tokens.append(await c.leases.revoke(cid))
    assert tokens == sorted(set(tokens)) and len(tokens) == 4
    assert await a.leases.holder(cid) is None  # revoked: free
    with pytest.raises(LeaseLost):
        await b.events.append(cid, message("b after the revoke"), token=tokens[2])


async def test_a_live_lease_is_not_taken_and_an_expired_one_is(nodes: list[Storage]) -> None:
    a, b, _ = nodes
    cid = await create(a, "c1")
    assert (await a.leases.acquire(cid, "node-a", SHORT)).lease is not None
    refused = await b.leases.acquire(cid, "node-b", LONG)
    assert refused.lease is None and refused.holder == "node-a"
    await asyncio.sleep(SHORT + 0.2)
    assert await b.leases.holder(cid) is None
    assert (await b.leases.acquire(cid, "node-b", LONG)).lease is not None


async def test_renewal_keeps_leases_and_reports_the_ones_taken(nodes: list[Storage]) -> None:
    a, b, _ = nodes
    c1, c2 = await create(a, "c1"), await create(a, "c2")
    l1 = (await a.leases.acquire(c1, "node-a", SHORT)).lease
    l2 = (await a.leases.acquire(c2, "node-a", SHORT)).lease
    assert l1 is not None and l2 is not None
    for _ in range(3):  # renewed past several lease times
        await asyncio.sleep(SHORT / 2)
        assert await a.leases.renew("node-a", SHORT) == {c1: l1.token, c2: l2.token}
    assert (await b.leases.acquire(c1, "node-b", LONG)).lease is None
    await asyncio.sleep(SHORT + 0.2)  # node a stops renewing: node b takes c1
    assert (await b.leases.acquire(c1, "node-b", LONG)).lease is not None
    assert await a.leases.renew("node-a", SHORT) == {c2: l2.token}


async def test_orphaned_lists_wanted_conversations_without_a_live_lease(
    nodes: list[Storage],
) -> None:
    a, b, _ = nodes
    wanted, unwanted = await create(a, "c1"), await create(a, "c2")
    await a.conversations.update_fields(wanted, desired_running=True)
    assert [m.conversation_id for m in await b.leases.orphaned()] == [wanted]
    assert (await a.leases.acquire(wanted, "node-a", SHORT)).lease is not None
    assert await b.leases.orphaned() == []
    await asyncio.sleep(SHORT + 0.2)
    assert [m.conversation_id for m in await b.leases.orphaned()] == [wanted]
    assert unwanted not in [m.conversation_id for m in await b.leases.orphaned()]


async def test_the_user_limit_holds_across_nodes_racing(nodes: list[Storage]) -> None:
    ids = [await create(nodes[0], f"c{i}") for i in range(6)]
    await create(nodes[0], "other-user", user_id="u2")
    results = await asyncio.gather(
        *(
            nodes[i % 3].leases.acquire(cid, f"node-{i % 3}", LONG, user_limit=2)
            for i, cid in enumerate(ids)
        )
    )
    acquired = [r.lease.conversation_id for r in results if r.lease is not None]
    assert len(acquired) == 2
    refused = [r for r in results if r.lease is None]
    assert all(sorted(r.over_limit) == sorted(acquired) for r in refused)
    # another user is not counted; an expired or released lease frees a place
    assert (await nodes[1].leases.acquire("other-user", "node-1", LONG, user_limit=1)).lease
    lease = next(r.lease for r in results if r.lease is not None)
    await nodes[0].leases.release(lease.conversation_id, lease.token)
    free = next(cid for cid in ids if cid not in acquired)
    assert (await nodes[2].leases.acquire(free, "node-2", LONG, user_limit=2)).lease is not None


async def test_no_write_under_the_old_token_lands_after_a_takeover(nodes: list[Storage]) -> None:
    """Node a appends as fast as it can while node b takes the lease over: every event of a
    comes before b's first one, and a's first refused write is its last."""
    a, b, _ = nodes
    cid = await create(a, "c1")
    first = (await a.leases.acquire(cid, "node-a", SHORT)).lease
    assert first is not None

    async def node_a() -> int:
        written = 0
        while True:
            try:
                await a.events.append(cid, message(f"a{written}"), token=first.token)
            except LeaseLost:
                return written
            written += 1
            await asyncio.sleep(0)  # the in-memory store never waits: let b in

    writer = asyncio.create_task(node_a())
    await asyncio.sleep(SHORT + 0.2)
    second = (await b.leases.acquire(cid, "node-b", LONG)).lease
    assert second is not None
    await b.events.append(cid, message("b0"), token=second.token)
    written = await asyncio.wait_for(writer, 10)
    events = await b.events.list(cid)
    texts = [e.message for e in events]
    assert texts[-1] == "b0" and texts[:-1] == [f"a{i}" for i in range(written)]
    assert [e.id for e in events] == list(range(len(events)))
