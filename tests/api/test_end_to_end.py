"""A real task through real HTTP: the scripted LLM server via litellm, a real shell."""

from __future__ import annotations

from typing import Any

import pytest

from convo.llm.scripted_server import ScriptedLLMServer
from convo.llm.scripted_server_script import http_error, tool_call
from tests.api.conftest import ServeFactory, wait_for


async def _events(client: Any, cid: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        page = (
            await client.get(
                f"/api/conversations/{cid}/events", params={"start_id": len(events), "limit": 100}
            )
        ).json()
        events.extend(page["events"])
        if not page["has_more"]:
            return events


@pytest.mark.parametrize("runtime", ["process", "sandbox"])
async def test_agent_runs_a_command_edits_a_file_and_finishes(
    server_factory: ServeFactory, runtime: str
) -> None:
    script = [
        tool_call("execute_bash", {"command": "echo hello > greet.txt && cat greet.txt"}),
        tool_call(
            "str_replace_editor",
            {"command": "create", "path": "notes.txt", "file_text": "alpha\nsecond line\n"},
        ),
        tool_call(
            "str_replace_editor",
            {"command": "str_replace", "path": "notes.txt", "old_str": "alpha", "new_str": "beta"},
        ),
        tool_call("finish", {"message": "All done."}),
    ]
    async with (
        ScriptedLLMServer(script, api_key="right-key") as llm,
        server_factory(llm_base_url=llm.base_url, llm_api_key="right-key") as server,
    ):
        created = await server.client.post(
            "/api/conversations", json={"initial_user_msg": "Greet, then write notes."}
        )
        cid = created.json()["conversation_id"]

        async def finished() -> bool:
            return any(
                e.get("extras", {}).get("agent_state") == "finished"
                for e in await _events(server.client, cid)
            )

        await wait_for(finished, timeout=30)
        workspace = server.manager.workspace_path(cid)
        assert (workspace / "greet.txt").read_text() == "hello\n"
        assert (workspace / "notes.txt").read_text() == "beta\nsecond line\n"

        events = await _events(server.client, cid)
        assert [e["id"] for e in events] == list(range(len(events)))
        kinds = [(e["source"], e.get("action") or e.get("observation")) for e in events]
        assert kinds[0] == ("user", "message")
        steps = [k for k in kinds if k[1] != "agent_state_changed"]
        assert steps == [
            ("user", "message"),
            ("agent", "system"),  # the prompt and tools, as OpenHands opens a conversation
            ("user", "recall"),  # the first message's workspace context
            ("environment", "recall"),
            ("agent", "run"),
            ("agent", "run"),
            ("agent", "edit"),
            ("agent", "edit"),
            ("agent", "edit"),
            ("agent", "edit"),
            ("agent", "finish"),
        ]
        states = [
            e["extras"]["agent_state"]
            for e in events
            if e.get("observation") == "agent_state_changed"
        ]
        assert states[0] == "loading" and states[-1] == "finished" and "running" in states

        run_action = next(e for e in events if e.get("action") == "run")
        run_obs = next(e for e in events if e.get("observation") == "run")
        assert run_action["args"]["command"] == "echo hello > greet.txt && cat greet.txt"
        assert run_obs["cause"] == run_action["id"]
        assert run_obs["extras"]["metadata"]["exit_code"] == 0
        assert "hello" in run_obs["content"]
        assert run_action["tool_call_metadata"]["function_name"] == "execute_bash"
        finish = next(e for e in events if e.get("action") == "finish")
        assert "All done." in str(finish["args"])

        info = (await server.client.get(f"/api/conversations/{cid}")).json()
        assert info["status"] == "RUNNING"  # the loop stays up for the next message
        # the LLM saw the tool results of each step
        assert len(llm.requests) == 4
        last_messages = llm.requests[-1]["messages"]
        assert any(
            m.get("role") == "tool" and "hello" in str(m.get("content")) for m in last_messages
        )
        assert {t["function"]["name"] for t in llm.requests[0]["tools"]} >= {
            "execute_bash",
            "str_replace_editor",
            "think",
            "finish",
        }


async def test_a_bad_llm_key_becomes_an_error_event(server_factory: ServeFactory) -> None:
    async with (
        ScriptedLLMServer([], api_key="right-key") as llm,
        server_factory(llm_base_url=llm.base_url, llm_api_key="wrong-key") as server,
    ):
        cid = (
            await server.client.post("/api/conversations", json={"initial_user_msg": "hello"})
        ).json()["conversation_id"]

        async def errored() -> bool:
            return any(
                e.get("extras", {}).get("agent_state") == "error"
                for e in await _events(server.client, cid)
            )

        await wait_for(errored, timeout=30)
        events = await _events(server.client, cid)
        error = next(e for e in events if e.get("observation") == "error")
        assert "authentic" in error["content"].lower()
        assert "wrong-key" not in str(events)
        info = (await server.client.get(f"/api/conversations/{cid}")).json()
        assert info["status"] == "RUNNING"  # still usable: a fixed key and a new message work


async def test_an_unreachable_llm_becomes_an_error_event(server_factory: ServeFactory) -> None:
    async with ScriptedLLMServer([http_error(503)]) as llm:
        dead_url = llm.base_url
    async with server_factory(llm_base_url=dead_url, llm_num_retries=0) as server:
        cid = (
            await server.client.post("/api/conversations", json={"initial_user_msg": "hello"})
        ).json()["conversation_id"]

        async def errored() -> bool:
            return any(e.get("observation") == "error" for e in await _events(server.client, cid))

        await wait_for(errored, timeout=30)
