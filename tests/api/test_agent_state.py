"""What a person reads in the conversation list: the agent's state beside the status, and
LLM settings that reach a running conversation at its next call."""

from __future__ import annotations

from typing import Any

from convo.llm.scripted_server import ScriptedLLMServer
from convo.llm.scripted_server_script import tool_call
from tests.api.conftest import ServeFactory, wait_for

NEW_KEY = "key-b-0123456789"


async def _listed(client: Any) -> dict[str, dict[str, Any]]:
    page = (await client.get("/api/conversations")).json()
    return {c["conversation_id"]: c for c in page["results"]}


async def _state_is(client: Any, cid: str, state: str) -> bool:
    info = (await client.get(f"/api/conversations/{cid}")).json()
    return bool(info["agent_state"] == state)


async def test_list_and_info_say_what_the_agent_did(server_factory: ServeFactory) -> None:
    script = [tool_call("finish", {"message": "Done here."})]
    async with (
        ScriptedLLMServer(script, api_key="right-key") as llm,
        server_factory(llm_base_url=llm.base_url, llm_api_key="right-key") as server,
    ):
        client = server.client
        cid = (
            await client.post("/api/conversations", json={"initial_user_msg": "say done"})
        ).json()["conversation_id"]
        await wait_for(lambda: _state_is(client, cid, "finished"), timeout=30)
        listed = (await _listed(client))[cid]
        assert listed["agent_state"] == "finished" and listed["status"] == "RUNNING"
        # OpenHands' fields are all still there
        assert {"conversation_id", "title", "status", "runtime_status", "created_at"} <= set(listed)

        assert (await client.post(f"/api/conversations/{cid}/stop")).status_code == 200
        info = (await client.get(f"/api/conversations/{cid}")).json()
        assert (info["status"], info["agent_state"]) == ("STOPPED", "stopped")
        assert (await _listed(client))[cid]["agent_state"] == "stopped"


async def test_a_settings_change_reaches_a_running_conversation(
    server_factory: ServeFactory,
) -> None:
    """A wrong key fails the first call; new settings (another endpoint, its key) saved while
    the loop runs are used by the next call, and the new key is masked in events."""
    second = [
        tool_call("execute_bash", {"command": f"echo {NEW_KEY}"}),
        tool_call("finish", {"message": "Worked with the new settings."}),
    ]
    async with (
        ScriptedLLMServer([], api_key="key-a") as first_llm,
        ScriptedLLMServer(second, api_key=NEW_KEY) as second_llm,
        server_factory(llm_base_url=first_llm.base_url, llm_api_key="wrong") as server,
    ):
        client = server.client
        cid = (await client.post("/api/conversations", json={"initial_user_msg": "hello"})).json()[
            "conversation_id"
        ]
        await wait_for(lambda: _state_is(client, cid, "error"), timeout=30)
        assert (await _listed(client))[cid]["agent_state"] == "error"

        saved = await client.post(
            "/api/settings",
            json={
                "llm_model": "openai/other-model",
                "llm_base_url": second_llm.base_url,
                "llm_api_key": NEW_KEY,
            },
        )
        assert saved.status_code == 200
        sent = await client.post(
            f"/api/conversations/{cid}/events",
            json={"action": "message", "args": {"content": "try again"}},
        )
        assert sent.status_code == 200
        await wait_for(lambda: _state_is(client, cid, "finished"), timeout=30)

        assert first_llm.requests == []  # the wrong key never got an answer
        assert [r["model"] for r in second_llm.requests] == ["other-model", "other-model"]
        events = (
            await client.get(f"/api/conversations/{cid}/events", params={"limit": 100})
        ).json()["events"]
        output = next(e for e in events if e.get("observation") == "run")
        assert "<secret_hidden>" in output["content"]
        assert NEW_KEY not in str(events)
