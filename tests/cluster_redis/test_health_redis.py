"""/health in cluster mode: Redis is one of the things a server needs to be ready."""

from __future__ import annotations

from convo.api.app import Overrides
from convo.storage.memory import MemoryStorage
from tests.api.conftest import ServeFactory
from tests.cluster_redis.conftest import RedisServer
from tests.faults.proxy import FaultProxy

UNUSED_POSTGRES = "postgresql+asyncpg://convo@127.0.0.1:9/unused"  # storage is in memory


async def test_health_is_503_while_redis_does_not_answer(
    redis_server: RedisServer, server_factory: ServeFactory
) -> None:
    proxy = await FaultProxy("127.0.0.1", redis_server.port).start()
    try:
        async with server_factory(
            Overrides(storage=MemoryStorage()),
            database_url=UNUSED_POSTGRES,
            redis_url=f"redis://127.0.0.1:{proxy.port}/0",
        ) as server:
            ready = await server.client.get("/health")
            assert ready.status_code == 200
            assert ready.json()["redis"] == "ok"
            for fault in (proxy.cut, proxy.stall):
                fault()
                down = await server.client.get("/health")
                assert down.status_code == 503
                assert down.json()["status"] == "unavailable"
                assert down.json()["redis"].startswith("down")
                assert down.json()["database"] == "ok"
                assert "Retry-After" in down.headers
                assert (await server.client.get("/alive")).status_code == 200
                proxy.restore()
                assert (await server.client.get("/health")).status_code == 200
    finally:
        await proxy.aclose()


async def test_a_single_server_has_no_redis_check(server_factory: ServeFactory) -> None:
    async with server_factory() as server:
        health = (await server.client.get("/health")).json()
        assert "redis" not in health
        assert server.app.state.redis is None
