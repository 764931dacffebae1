"""Cluster nodes share a PostgreSQL database with each other, never with a single server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from convo.errors import AnotherServerRunning
from convo.storage import open_storage
from convo.storage.sql import SqlStorage
from tests.storage.conftest import fresh_postgres_database


@pytest.fixture
async def opened(postgres_url: str) -> AsyncIterator[list[SqlStorage]]:
    async with fresh_postgres_database(postgres_url) as url:
        storages = [open_storage(url) for _ in range(3)]
        try:
            yield storages
        finally:
            for storage in storages:
                await storage.aclose()


async def test_nodes_share_and_a_single_server_is_refused(opened: list[SqlStorage]) -> None:
    first, second, single = opened
    await first.claim_single_server("node one", shared=True)
    await second.claim_single_server("node two", shared=True)
    with pytest.raises(AnotherServerRunning, match=r"node (one|two)") as refused:
        await single.claim_single_server("single")
    assert "CONVO_REDIS_URL" in str(refused.value)


async def test_a_node_is_refused_where_a_single_server_runs(opened: list[SqlStorage]) -> None:
    single, node, _ = opened
    await single.claim_single_server("single")
    with pytest.raises(AnotherServerRunning, match="single") as refused:
        await node.claim_single_server("node", shared=True)
    assert "single server" in str(refused.value)
