"""The lease keeper: which leases a node counts as lost, and when."""

from __future__ import annotations

import asyncio

from convo.domain.conversation import ConversationMetadata
from convo.errors import StorageUnavailable
from convo.services.ownership import LeaseOwnership
from convo.storage.memory import MemoryStorage

TTL = 0.3


class CutOff:
    """The lease store as a node cut off from the database sees it: renewals fail."""

    def __init__(self, storage: MemoryStorage) -> None:
        self._inner = storage.leases
        self.cut = False

    async def renew(self, owner: str, ttl_seconds: float) -> dict[str, int]:
        if self.cut:
            raise StorageUnavailable("Renewing leases failed: connection refused")
        return await self._inner.renew(owner, ttl_seconds)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


async def _conversations(storage: MemoryStorage, *ids: str) -> None:
    for conversation_id in ids:
        await storage.conversations.create(ConversationMetadata(conversation_id=conversation_id))


async def test_a_lease_taken_by_another_node_is_lost_and_the_others_kept() -> None:
    storage = MemoryStorage()
    await _conversations(storage, "c1", "c2")
    lost: list[str] = []
    node = LeaseOwnership(storage.leases, "node-a", TTL)
    node.start(lost.append)
    try:
        assert (await node.acquire("c1", None)).lease is not None
        assert (await node.acquire("c2", None)).lease is not None
        assert await node.renew() == []
        await storage.leases.revoke("c1")  # as a takeover would
        assert await node.renew() == ["c1"]
        assert lost == ["c1"] and node.token("c1") is None and node.token("c2") is not None
    finally:
        await node.aclose()


async def test_a_node_that_cannot_renew_for_a_lease_time_drops_every_lease() -> None:
    storage = MemoryStorage()
    await _conversations(storage, "c1", "c2")
    cut = CutOff(storage)
    lost: list[str] = []
    node = LeaseOwnership(cut, "node-a", TTL)  # type: ignore[arg-type]
    node.start(lost.append)
    try:
        await node.acquire("c1", None)
        await node.acquire("c2", None)
        cut.cut = True
        await asyncio.sleep(TTL / 2)
        assert lost == []  # failing, but within the lease time: the loops go on
        for _ in range(50):
            if lost:
                break
            await asyncio.sleep(TTL / 10)
        assert sorted(lost) == ["c1", "c2"]  # the keeper noticed by itself
        assert node.token("c1") is None and node.token("c2") is None
    finally:
        await node.aclose()


async def test_a_lease_held_in_the_database_and_not_here_is_released() -> None:
    storage = MemoryStorage()
    await _conversations(storage, "c1")
    node = LeaseOwnership(storage.leases, "node-a", 60)
    # an acquire whose answer never reached the node (its caller was cancelled)
    assert (await storage.leases.acquire("c1", "node-a", 60)).lease is not None
    await node.renew()  # one round: it may be an acquire still on its way
    assert await storage.leases.holder("c1") == "node-a"
    await node.renew()
    assert await storage.leases.holder("c1") is None
