"""One three-node cluster for the whole package (starting it costs more than most tests).

Each test gets it healed (every node up and running, Redis up, the proxy forwarding) and
leaves no conversation running behind it. Tests run in the package's event loop, which also
serves the scripted LLM: mark modules with ``pytestmark = CLUSTER``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from bench.redis_server import RedisServer

from tests.cluster.cluster import Cluster, scripted_llm
from tests.conftest import POSTGRES_URL
from tests.faults.proxy import FaultProxy
from tests.storage.conftest import fresh_postgres_database

CLUSTER = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.asyncio(loop_scope="package"),
    # until cluster mode lands, a second server on the database is refused at start
    pytest.mark.xfail(strict=True, reason="cluster mode (issue 10) is not built yet"),
]


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def started_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    redis = await RedisServer(root / "redis").start()
    proxy = await FaultProxy("127.0.0.1", redis.port).start()
    async with fresh_postgres_database(POSTGRES_URL) as url, scripted_llm() as llm:
        cluster = Cluster(root, url, redis, proxy, llm)
        cluster.add_nodes()
        try:
            await cluster.start()
            yield cluster
        finally:
            await cluster.aclose()
            await proxy.aclose()
            await redis.stop()


@pytest_asyncio.fixture(loop_scope="package")
async def cluster(started_cluster: Cluster) -> AsyncIterator[Cluster]:
    await started_cluster.heal()
    yield started_cluster
    await started_cluster.heal()
    await started_cluster.stop_everything()
