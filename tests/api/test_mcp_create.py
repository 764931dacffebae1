"""mcp_config at create (OpenHands' InitSessionRequest): the servers of the conversation's
first loop, instead of the settings' ones; validated like the settings'."""

from __future__ import annotations

import sys

from convo.llm.scripted_server import ScriptedLLMServer
from convo.llm.scripted_server_script import tool_call
from tests.agent.mcp_helpers import FIXTURE
from tests.api.conftest import ServeFactory, wait_for
from tests.api.test_end_to_end import _events


async def test_a_create_s_mcp_servers_serve_its_loop(server_factory: ServeFactory) -> None:
    script = [tool_call("add", {"a": 4, "b": 5}), tool_call("finish", {"message": "Done."})]
    mcp_config = {
        "stdio_servers": [
            {"name": "own", "command": sys.executable, "args": [str(FIXTURE), "stdio"]}
        ]
    }
    async with (
        ScriptedLLMServer(script, api_key="k") as llm,
        server_factory(llm_base_url=llm.base_url, llm_api_key="k") as server,
    ):
        refused = await server.client.post(
            "/api/conversations",
            json={"initial_user_msg": "x", "mcp_config": {"sse_servers": ["ftp://x"]}},
        )
        assert refused.status_code == 422
        created = await server.client.post(
            "/api/conversations", json={"initial_user_msg": "Add.", "mcp_config": mcp_config}
        )
        cid = created.json()["conversation_id"]

        async def finished() -> bool:
            events = await _events(server.client, cid)
            return any(e.get("extras", {}).get("agent_state") == "finished" for e in events)

        await wait_for(finished, timeout=60)
        events = await _events(server.client, cid)
        settings = (await server.client.get("/api/settings")).json()
    [result] = [e for e in events if e.get("observation") == "mcp"]
    assert result["content"] == "sum=9"
    assert settings["mcp_config"] is None  # the user's settings are untouched
