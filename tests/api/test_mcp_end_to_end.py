"""MCP tools end to end: settings saved over HTTP, a stdio server inside the conversation's
bubblewrap sandbox and a streamable-HTTP one on 127.0.0.1, the scripted LLM calling them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from convo.llm.scripted_server import ScriptedLLMServer
from convo.llm.scripted_server_script import tool_call
from tests.agent.mcp_helpers import FIXTURE, IN_SANDBOX, build_site, http_fixture, stage_fixture
from tests.api.conftest import ServeFactory, wait_for
from tests.api.test_end_to_end import _events

TOKEN = "mcp-env-token-93be1"
API_KEY = "shttp-key-41aa7"
# the workspace only exists once the conversation starts: the server waits for the test to
# put the fixture and its packages there
WAIT_THEN_RUN = (
    f"until [ -f {IN_SANDBOX}/ready ]; do sleep 0.05; done; "
    f"exec python3 {IN_SANDBOX}/{FIXTURE.name} stdio"
)


@pytest.mark.timeout(120)
async def test_the_agent_calls_mcp_tools(server_factory: ServeFactory, tmp_path: Path) -> None:
    script = [
        tool_call("where", {}, content="Where does it run?"),
        tool_call("web_add", {"a": 2, "b": 3}),
        tool_call("web_auth", {}),
        tool_call("token", {}),
        tool_call("die", {}),
        tool_call("add", {"a": 1, "b": 1}),
        tool_call("finish", {"message": "Done."}),
    ]
    site = build_site(tmp_path / "site-cache")
    async with (
        http_fixture() as url,
        ScriptedLLMServer(script, api_key="k") as llm,
        server_factory(
            llm_base_url=llm.base_url, llm_api_key="k", runtime="sandbox", sandbox_network="none"
        ) as server,
    ):
        mcp_config: dict[str, Any] = {
            "stdio_servers": [
                {
                    "name": "inside",
                    "command": "sh",
                    "args": ["-c", WAIT_THEN_RUN],
                    "env": {"PYTHONPATH": f"{IN_SANDBOX}/site", "FIXTURE_TOKEN": TOKEN},
                }
            ],
            "shttp_servers": [{"url": url, "api_key": API_KEY}],
            "sse_servers": ["http://127.0.0.1:9/sse"],  # nothing listens there
        }
        saved = await server.client.post("/api/settings", json={"mcp_config": mcp_config})
        assert saved.status_code == 200
        view = (await server.client.get("/api/settings")).json()["mcp_config"]
        assert view["stdio_servers"][0]["env"]["FIXTURE_TOKEN"] == "<secret_hidden>"
        assert view["shttp_servers"] == [{"url": url, "api_key": "<secret_hidden>", "timeout": 60}]

        created = await server.client.post(
            "/api/conversations", json={"initial_user_msg": "Use the MCP tools."}
        )
        cid = created.json()["conversation_id"]
        workspace = server.manager.workspace_path(cid)
        await wait_for(workspace.exists, timeout=30)
        stage_fixture(workspace, site)
        (workspace / ".mcp" / "ready").touch()

        async def finished() -> bool:
            events = await _events(server.client, cid)
            return any(e.get("extras", {}).get("agent_state") == "finished" for e in events)

        await wait_for(finished, timeout=60)
        events = await _events(server.client, cid)

    # a one-line error event for the server that is not there, and for the refused tool
    notices = [e for e in events if e.get("extras", {}).get("error_id") == "STATUS$ERROR_MCP"]
    assert all(e["source"] == "environment" for e in notices)
    assert any("http://127.0.0.1:9/sse" in e["content"] for e in notices)
    assert any("'think'" in e["content"] and "built-in" in e["content"] for e in notices)

    actions = [e for e in events if e.get("action") == "call_tool_mcp"]
    names = [a["args"]["name"] for a in actions]
    assert names == ["where", "web_add", "web_auth", "token", "die", "add"]
    assert actions[1]["args"]["arguments"] == {"a": 2, "b": 3}
    assert actions[0]["args"]["thought"] == "Where does it run?"
    assert actions[1]["message"].startswith("I am interacting with the MCP server with name:")
    assert actions[1]["tool_call_metadata"]["function_name"] == "web_add"

    results = {e["cause"]: e for e in events if e.get("cause") in {a["id"] for a in actions}}
    where, added, auth, token, died, again = (results[a["id"]] for a in actions)
    assert where["observation"] == "mcp"
    fields = dict(part.split("=") for part in where["content"].split())
    assert fields["cwd"] == "/workspace" and int(fields["pid"]) < 10  # inside the sandbox
    assert added["observation"] == "mcp" and added["content"] == "sum=5"
    assert added["extras"] == {"name": "web_add", "arguments": {"a": 2, "b": 3}}
    # the API key reached the HTTP server and the stdio server's environment reached it;
    # both are masked like every secret
    assert auth["content"] == "authorization=Bearer <secret_hidden>"
    assert token["content"] == "token=<secret_hidden>"
    assert TOKEN not in json.dumps(events) and API_KEY not in json.dumps(events)
    assert died["observation"] == "error" and "MCP die failed" in died["content"]
    assert again["observation"] == "mcp" and again["content"] == "sum=2"  # started again

    # the LLM was offered the MCP tools next to the built-ins, and read their results
    offered = {t["function"]["name"] for t in llm.requests[0]["tools"]}
    assert {"execute_bash", "finish", "where", "add", "web_add", "web_think"} <= offered
    assert "think" in offered  # the built-in, not the server's
    tool_results = [m for m in llm.requests[1]["messages"] if m["role"] == "tool"]
    assert tool_results[-1]["content"] == where["content"]
    last = [m for m in llm.requests[-1]["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in last][1:4] == [
        "sum=5",
        "authorization=Bearer <secret_hidden>",
        "token=<secret_hidden>",
    ]
    assert last[4]["content"].startswith("ERROR: MCP die failed")
