"""A finished conversation releases its sandbox after CONVO_SANDBOX_IDLE_SECONDS (its processes
are gone, it stays RUNNING) and gets a new one on the next message, over the same workspace."""

from __future__ import annotations

from typing import Any

from convo.api.app import Overrides
from convo.llm.scripted import ScriptedLLM, tool_response
from tests.api.conftest import ServeFactory, first_events, wait_for
from tests.processes import pid_gone


def _finishes(events: list[dict[str, Any]]) -> int:
    return sum(1 for e in events if e.get("action") == "finish")


async def test_an_idle_sandbox_is_released_and_comes_back_with_the_workspace(
    server_factory: ServeFactory,
) -> None:
    llm = ScriptedLLM(
        [
            tool_response(
                "execute_bash",
                {
                    "command": "echo remembered > note.txt; echo $$ > shell.pid; "
                    "sleep 300 & echo $! > sleep.pid"
                },
            ),
            tool_response("finish", {"message": "wrote it"}),
            tool_response("execute_bash", {"command": "cat note.txt"}),
            tool_response("finish", {"message": "read it"}),
        ]
    )
    overrides = Overrides(llm_factory=lambda _c: llm)
    async with server_factory(
        overrides, sandbox_idle_seconds=0.5, reconcile_interval_seconds=0.2
    ) as server:
        client = server.client
        created = await client.post("/api/conversations", json={"initial_user_msg": "write"})
        cid = created.json()["conversation_id"]

        async def finished(count: int) -> bool:
            return _finishes(await first_events(client, cid)) >= count

        await wait_for(lambda: finished(1))
        workspace = server.manager.workspace_path(cid)
        shell = int((workspace / "shell.pid").read_text())
        pid = int((workspace / "sleep.pid").read_text())
        await wait_for(lambda: pid_gone(pid) and pid_gone(shell))  # released
        sandbox = server.manager.running_conversations()[0].sandbox
        await wait_for(lambda: sandbox.releases == 1)  # its processes die before it returns
        info = (await client.get(f"/api/conversations/{cid}")).json()
        assert info["status"] == "RUNNING"  # the conversation itself goes on

        await client.post(
            f"/api/conversations/{cid}/events",
            json={"action": "message", "args": {"content": "read it back"}},
        )
        await wait_for(lambda: finished(2))
        outputs = [
            e["content"] for e in await first_events(client, cid) if e.get("observation") == "run"
        ]
        assert outputs[-1].strip() == "remembered"
