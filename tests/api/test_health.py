"""/alive and /health, and the runtime they announce."""

from __future__ import annotations

from tests.api.conftest import ServeFactory


async def test_health_warns_when_commands_run_unconfined(server_factory: ServeFactory) -> None:
    async with server_factory(runtime="process") as server:
        assert (await server.client.get("/alive")).json() == {"status": "ok"}
        health = (await server.client.get("/health")).json()
        assert health["runtime"] == "process"
        assert "unconfined" in health["warnings"][0]


async def test_health_names_the_sandbox_when_bubblewrap_works(
    server_factory: ServeFactory,
) -> None:
    async with server_factory(runtime="sandbox") as server:
        health = (await server.client.get("/health")).json()
        assert health == {"status": "ok", "runtime": "sandbox", "database": "ok", "disk": "ok"}
