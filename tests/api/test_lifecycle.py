"""Limits, stop and the per-conversation environment."""

from __future__ import annotations

from convo.api.app import Overrides
from convo.llm.scripted import ScriptedLLM, text_response, tool_response
from tests.api.conftest import ServeFactory, first_events, wait_for
from tests.processes import pid_gone


async def test_over_the_limit_the_least_recent_is_stopped_with_a_reason(
    server_factory: ServeFactory,
) -> None:
    async with server_factory(max_concurrent_conversations=2) as server:
        ids = []
        for _ in range(3):
            cid = (await server.client.post("/api/conversations", json={})).json()[
                "conversation_id"
            ]
            ids.append(cid)
            if len(ids) < 3:  # settle, so the first is clearly the least recently active
                await wait_for(
                    lambda c=cid: (
                        server.manager.agent_state(c) is not None
                        and server.manager.agent_state(c).value == "awaiting_user_input"
                    )
                )
        assert sorted(server.manager.running_ids()) == sorted(ids[1:])
        first = (await server.client.get(f"/api/conversations/{ids[0]}")).json()
        assert first["status"] == "STOPPED"
        events = await first_events(server.client, ids[0])
        reason = [e for e in events if e.get("observation") == "error"]
        assert reason and reason[0]["extras"]["error_id"] == "AGENT_ERROR$TOO_MANY_CONVERSATIONS"
        assert events[-1]["extras"]["agent_state"] == "stopped"


async def test_stop_kills_a_running_command(server_factory: ServeFactory) -> None:
    llm = ScriptedLLM(
        [
            tool_response(
                "execute_bash", {"command": "sleep 300 & echo $! > sleep.pid; wait", "timeout": 600}
            )
        ]
    )
    async with server_factory(Overrides(llm_factory=lambda _c: llm)) as server:
        cid = (
            await server.client.post("/api/conversations", json={"initial_user_msg": "sleep"})
        ).json()["conversation_id"]
        pid_file = server.manager.workspace_path(cid) / "sleep.pid"
        await wait_for(lambda: pid_file.exists() and pid_file.read_text().strip())
        pid = int(pid_file.read_text())
        assert not pid_gone(pid)
        stopped = await server.client.post(f"/api/conversations/{cid}/stop")
        assert stopped.json() == {
            "status": "ok",
            "conversation_id": cid,
            "message": "Conversation stopped successfully",
            "conversation_status": "STOPPED",
        }
        await wait_for(lambda: pid_gone(pid), timeout=5)
        again = await server.client.post(f"/api/conversations/{cid}/stop")
        assert again.json()["message"] == "Conversation was not running"
        unknown = await server.client.post("/api/conversations/nope/stop")
        assert unknown.status_code == 200  # as OpenHands: nothing runs under that id
        assert unknown.json() == {
            "status": "ok",
            "conversation_id": "nope",
            "message": "Conversation was not running",
            "conversation_status": "STOPPED",
        }


async def test_provider_tokens_reach_the_shell_and_never_the_events(
    server_factory: ServeFactory,
) -> None:
    llm = ScriptedLLM(
        [
            tool_response("execute_bash", {"command": "echo token=$GITHUB_TOKEN gl=$GITLAB_TOKEN"}),
            text_response("done"),
        ]
    )
    async with server_factory(Overrides(llm_factory=lambda _c: llm)) as server:
        await server.client.post(
            "/api/add-git-providers",
            json={
                "provider_tokens": {
                    "github": {"token": "ghp_supersecret123"},
                    "gitlab": {"token": "glpat-other456"},
                }
            },
        )
        cid = (await server.client.post("/api/conversations", json={})).json()["conversation_id"]
        await server.client.post(f"/api/conversations/{cid}/stop")
        started = await server.client.post(
            f"/api/conversations/{cid}/start", json={"providers_set": ["github"]}
        )
        assert started.status_code == 200
        await server.client.post(
            f"/api/conversations/{cid}/events",
            json={"action": "message", "args": {"content": "print the token"}},
        )

        async def ran() -> bool:
            return any(
                e.get("observation") == "run" for e in await first_events(server.client, cid)
            )

        await wait_for(ran)
        events = await first_events(server.client, cid)
        observation = next(e for e in events if e.get("observation") == "run")
        assert "token=<secret_hidden>" in observation["content"]
        assert "gl=" in observation["content"] and "glpat" not in observation["content"]
        assert "ghp_supersecret123" not in str(events)
