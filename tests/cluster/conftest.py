"""One three-node cluster for the whole package (starting it costs more than most tests).

Each test gets it healed (every node up and none frozen, Redis up, the proxy forwarding) and
leaves no conversation running behind it. Tests run in the package's event loop: mark
modules with ``pytestmark = CLUSTER``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from bench.cluster_nodes import Cluster
from bench.harness import ScriptedLLMProcess
from bench.redis_server import RedisServer

from tests.cluster.cluster import LEASE_SECONDS, RUNNING_LIMIT, SCRIPTS, ClusterRig
from tests.conftest import POSTGRES_URL
from tests.faults.proxy import FaultProxy
from tests.storage.conftest import fresh_postgres_database

CLUSTER = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.asyncio(loop_scope="package"),
]


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def test_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ClusterRig]:
    root = tmp_path_factory.mktemp("cluster")
    redis = await RedisServer(root / "redis").start()
    proxy = await FaultProxy("127.0.0.1", redis.port).start()
    llm = await ScriptedLLMProcess(root / "llm", per_conversation=True, scripts=SCRIPTS).start()
    try:
        async with fresh_postgres_database(POSTGRES_URL) as url:
            cluster = Cluster(
                root,
                url,
                f"redis://127.0.0.1:{proxy.port}/0",
                llm,
                lease_seconds=LEASE_SECONDS,
                extra={
                    "max_concurrent_conversations": str(RUNNING_LIMIT),
                    "stop_timeout_seconds": "10",
                    "db_connect_timeout_seconds": "3",
                },
            )
            cluster.add_nodes()
            try:
                await cluster.start()
                yield ClusterRig(cluster, redis, proxy)
            finally:
                await cluster.aclose()
    finally:
        await llm.stop()
        await proxy.aclose()
        await redis.stop()


@pytest_asyncio.fixture(loop_scope="package")
async def cluster(test_cluster: ClusterRig) -> AsyncIterator[Cluster]:
    await test_cluster.heal()
    yield test_cluster.cluster
    await test_cluster.heal()
    await test_cluster.cluster.stop_everything()


@pytest_asyncio.fixture(loop_scope="package")
async def faults(test_cluster: ClusterRig) -> ClusterRig:
    """The cluster's Redis and the proxy in front of it, for tests that break them."""
    return test_cluster
