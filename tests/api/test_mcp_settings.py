"""mcp_config in /api/settings: validated as OpenHands' model, stored normalised, returned."""

from __future__ import annotations

from typing import Any

from convo.api.app import Overrides
from tests.api.conftest import RunningServer, ServeFactory
from tests.stream.helpers import FakeSandboxFactory

SAVED: dict[str, Any] = {
    "sse_servers": [{"url": "http://127.0.0.1:9/sse", "api_key": "sse-key-1234"}],
    "stdio_servers": [
        {"name": "tools", "command": "python3", "args": "server.py --flag 'a b'", "env": "A=1"}
    ],
    "shttp_servers": ["http://127.0.0.1:9/mcp"],
}


async def _stored(server: RunningServer) -> Any:
    stored = await server.app.state.storage.settings.load_settings(None)
    return stored.extra["mcp_config"]


async def test_mcp_config_round_trips_normalised_with_its_secrets_hidden(
    server_factory: ServeFactory,
) -> None:
    async with server_factory(Overrides(sandbox_factory=FakeSandboxFactory())) as server:
        saved = await server.client.post("/api/settings", json={"mcp_config": SAVED})
        assert saved.status_code == 200
        response = await server.client.get("/api/settings")
        assert "sse-key-1234" not in response.text
        view = response.json()
        assert view["mcp_config"] == {
            "sse_servers": [{"url": "http://127.0.0.1:9/sse", "api_key": "<secret_hidden>"}],
            "stdio_servers": [
                {
                    "name": "tools",
                    "command": "python3",
                    "args": ["server.py", "--flag", "a b"],
                    "env": {"A": "<secret_hidden>"},
                }
            ],
            "shttp_servers": [{"url": "http://127.0.0.1:9/mcp", "api_key": None, "timeout": 60}],
        }
        stored = await _stored(server)
        assert stored["sse_servers"][0]["api_key"] == "sse-key-1234"
        assert stored["stdio_servers"][0]["env"] == {"A": "1"}

        # the web client saves the screen as it got it: the hidden values keep what they hide
        edited = view["mcp_config"]
        edited["stdio_servers"][0]["env"]["B"] = "2"
        edited["shttp_servers"][0]["api_key"] = "new-key-5678"
        edited["sse_servers"].append(
            {"url": "http://127.0.0.1:8/sse", "api_key": "<secret_hidden>"}
        )
        assert (await server.client.post("/api/settings", json={"mcp_config": edited})).is_success
        stored = await _stored(server)
        assert stored["sse_servers"][0]["api_key"] == "sse-key-1234"
        assert stored["sse_servers"][1]["api_key"] == "<secret_hidden>"  # hides nothing
        assert stored["stdio_servers"][0]["env"] == {"A": "1", "B": "2"}
        assert stored["shttp_servers"][0]["api_key"] == "new-key-5678"

        # a save without mcp_config keeps it; an empty one clears the servers
        await server.client.post("/api/settings", json={"language": "fr"})
        assert (await _stored(server))["stdio_servers"][0]["env"] == {"A": "1", "B": "2"}
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
