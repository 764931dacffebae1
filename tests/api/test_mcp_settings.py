"""mcp_config in /api/settings: validated as OpenHands' model, stored normalised, returned."""

from __future__ import annotations

from typing import Any

from convo.api.app import Overrides
from tests.api.conftest import ServeFactory
from tests.stream.helpers import FakeSandboxFactory

SAVED: dict[str, Any] = {
    "sse_servers": [{"url": "http://127.0.0.1:9/sse", "api_key": "sse-key-1234"}],
    "stdio_servers": [
        {"name": "tools", "command": "python3", "args": "server.py --flag 'a b'", "env": "A=1"}
    ],
    "shttp_servers": ["http://127.0.0.1:9/mcp"],
}


async def test_mcp_config_round_trips_normalised(server_factory: ServeFactory) -> None:
    async with server_factory(Overrides(sandbox_factory=FakeSandboxFactory())) as server:
        saved = await server.client.post("/api/settings", json={"mcp_config": SAVED})
        assert saved.status_code == 200
        view = (await server.client.get("/api/settings")).json()
        assert view["mcp_config"] == {
            "sse_servers": [{"url": "http://127.0.0.1:9/sse", "api_key": "sse-key-1234"}],
            "stdio_servers": [
                {
                    "name": "tools",
                    "command": "python3",
                    "args": ["server.py", "--flag", "a b"],
                    "env": {"A": "1"},
                }
            ],
            "shttp_servers": [{"url": "http://127.0.0.1:9/mcp", "api_key": None, "timeout": 60}],
        }
        # a save without mcp_config keeps it; an empty one clears the servers
        await server.client.post("/api/settings", json={"language": "fr"})
        assert (await server.client.get("/api/settings")).json()["mcp_config"] == view["mcp_config"]
        await server.client.post("/api/settings", json={"mcp_config": {}})
        assert (await server.client.get("/api/settings")).json()["mcp_config"] == {
            "sse_servers": [],
            "stdio_servers": [],
            "shttp_servers": [],
        }


async def test_invalid_mcp_config_is_refused_and_nothing_changes(
    server_factory: ServeFactory,
) -> None:
    bad_configs: list[dict[str, Any]] = [
        {"sse_servers": ["ftp://127.0.0.1/x"]},
        {"stdio_servers": [{"name": "a b", "command": "x"}]},
        {"stdio_servers": [{"name": "a", "command": "npx -y thing"}]},
        {"stdio_servers": [{"name": "a", "command": "x", "env": {"NOT VALID": "1"}}]},
        {"stdio_servers": [{"name": "a", "command": "x"}, {"name": "a", "command": "y"}]},
        {"shttp_servers": [{"url": "http://127.0.0.1:9/mcp", "timeout": 0}]},
        {"sse_servers": ["http://127.0.0.1:9/a"], "shttp_servers": ["http://127.0.0.1:9/a"]},
        {"unknown_servers": []},
    ]
    async with server_factory(Overrides(sandbox_factory=FakeSandboxFactory())) as server:
        await server.client.post("/api/settings", json={"mcp_config": SAVED})
        before = (await server.client.get("/api/settings")).json()["mcp_config"]
        for bad in bad_configs:
            answer = await server.client.post("/api/settings", json={"mcp_config": bad})
            assert answer.status_code == 422, bad
        assert (await server.client.get("/api/settings")).json()["mcp_config"] == before
