"""``replay_json`` at create, as the web client sends an uploaded trajectory: the recorded
agent actions are carried out again in the new conversation's own sandbox, then the model
takes over. Real HTTP, the process runtime (real commands and files)."""

from __future__ import annotations

import json
from typing import Any

from convo.api.app import Overrides
from convo.llm.scripted import ScriptedLLM, text_response, tool_response
from tests.api.conftest import RunningServer, ServeFactory, first_events, wait_for

# an OpenHands 0.53 trajectory export (environment events, observations, a confirmed run)
OPENHANDS_TRAJECTORY: list[dict[str, Any]] = [
    {"id": 0, "timestamp": "2025-08-14T10:00:00.000000", "source": "environment",
     "message": "", "observation": "agent_state_changed", "content": "",
     "extras": {"agent_state": "loading", "reason": ""}},
    {"id": 1, "timestamp": "2025-08-14T10:00:01.000000", "source": "user",
     "message": "Write hello.txt, then count its words",
     "action": "message", "args": {"content": "Write hello.txt, then count its words",
                                   "image_urls": None, "file_urls": None,
                                   "wait_for_response": False}},
    {"id": 2, "timestamp": "2025-08-14T10:00:02.000000", "source": "agent",
     "message": "Running command: echo hello replay > hello.txt", "action": "run",
     "args": {"command": "echo hello replay > hello.txt", "is_input": False,
              "thought": "First the file.", "blocking": False, "is_static": False,
              "cwd": None, "hidden": False, "confirmation_state": "confirmed"}},
    {"id": 3, "timestamp": "2025-08-14T10:00:03.000000", "source": "agent",
     "message": "Command `echo hello replay > hello.txt` executed with exit code 0.",
     "cause": 2, "observation": "run", "content": "",
     "extras": {"command": "echo hello replay > hello.txt", "hidden": False,
                "metadata": {"exit_code": 0}}, "success": True},
    {"id": 4, "timestamp": "2025-08-14T10:00:04.000000", "source": "agent",
     "message": "Running command: wc -w < hello.txt > count.txt", "action": "run",
     "args": {"command": "wc -w < hello.txt > count.txt", "is_input": False, "thought": ""}},
    {"id": 5, "timestamp": "2025-08-14T10:00:05.000000", "source": "agent",
     "message": "Done", "action": "finish",
     "args": {"final_thought": "Done: 2 words.", "outputs": {}, "thought": ""}},
]  # fmt: skip


async def _state(server: RunningServer, cid: str) -> str | None:
    states = [
        e["extras"]["agent_state"]
        for e in await first_events(server.client, cid)
        if e.get("observation") == "agent_state_changed"
    ]
    return states[-1] if states else None


async def test_an_openhands_trajectory_is_replayed(server_factory: ServeFactory) -> None:
    llm = ScriptedLLM()
    async with server_factory(Overrides(llm_factory=lambda _c: llm)) as server:
        # the home screen's "load trajectory": the file's text as replay_json
        body = {"replay_json": json.dumps(OPENHANDS_TRAJECTORY)}
        created = await server.client.post("/api/conversations", json=body)
        assert created.status_code == 200, created.text
        cid = created.json()["conversation_id"]

        async def finished() -> bool:
            return await _state(server, cid) == "finished"

        await wait_for(finished, timeout=30)
        workspace = server.manager.workspace_path(cid)
        assert (workspace / "hello.txt").read_text() == "hello replay\n"
        assert (workspace / "count.txt").read_text().strip() == "2"
        events = await first_events(server.client, cid)
        assert events[0]["action"] == "message" and events[0]["source"] == "user"
        assert events[0]["args"]["content"] == "Write hello.txt, then count its words"
        runs = [e for e in events if e.get("action") == "run"]
        assert [r["args"]["command"] for r in runs] == [
            "echo hello replay > hello.txt",
            "wc -w < hello.txt > count.txt",
        ]
        assert all(r["source"] == "agent" for r in runs)
        fresh = [e for e in events if e.get("observation") == "run"]
        assert [o["cause"] for o in fresh] == [r["id"] for r in runs]  # run again, here
        assert runs[0]["args"]["thought"] == "First the file."
        finish = next(e for e in events if e.get("action") == "finish")
        assert finish["args"]["final_thought"] == "Done: 2 words."
        assert llm.requests == []  # the model was not asked: the trajectory answered

        # the conversation goes on with the model after the replay
        llm.add(text_response("The file has two words."))
        await server.client.post(
            f"/api/conversations/{cid}/events",
            json={"action": "message", "args": {"content": "How many words?"}},
        )
        await wait_for(lambda: len(llm.requests) == 1, timeout=30)


async def test_convo_s_own_trajectory_replays_and_the_model_takes_over(
    server_factory: ServeFactory,
) -> None:
    llm = ScriptedLLM(
        [
            tool_response("execute_bash", {"command": "echo one > a.txt"}),
            tool_response(
                "str_replace_editor",
                {"command": "create", "path": "b.txt", "file_text": "two\n"},
            ),
            text_response("Both written."),
        ]
    )
    async with server_factory(Overrides(llm_factory=lambda _c: llm)) as server:
        first = await server.client.post(
            "/api/conversations", json={"initial_user_msg": "Write a.txt and b.txt"}
        )
        source = first.json()["conversation_id"]

        async def answered(cid: str) -> bool:
            return await _state(server, cid) == "awaiting_user_input"

        await wait_for(lambda: answered(source), timeout=30)
        trajectory = (await server.client.get(f"/api/conversations/{source}/trajectory")).json()
        asked = len(llm.requests)

        # the {"trajectory": [...]} download as it is; an answer ready in case the model
        # were asked (it must not be: the replayed message ends the turn)
        llm.add(text_response("Anything else?"))
        created = await server.client.post(
            "/api/conversations", json={"replay_json": json.dumps(trajectory)}
        )
        cid = created.json()["conversation_id"]
        await wait_for(lambda: answered(cid), timeout=30)
        workspace = server.manager.workspace_path(cid)
        assert (workspace / "a.txt").read_text() == "one\n"
        assert (workspace / "b.txt").read_text() == "two\n"
        messages = [
            e for e in await first_events(server.client, cid) if e.get("action") == "message"
        ]
        assert [m["args"]["content"] for m in messages] == [
            "Write a.txt and b.txt",
            "Both written.",  # replayed: the agent's message ends the replayed turn
        ]
        assert len(llm.requests) == asked


async def test_a_trajectory_that_cannot_be_replayed_is_a_400(server_factory: ServeFactory) -> None:
    async with server_factory(Overrides(llm_factory=lambda _c: ScriptedLLM())) as server:
        for bad in (
            "not json",
            json.dumps({"events": []}),
            json.dumps([]),
            json.dumps([OPENHANDS_TRAJECTORY[2]]),  # no user message first
        ):
            response = await server.client.post("/api/conversations", json={"replay_json": bad})
            assert response.status_code == 400, bad
            assert response.json()["status"] == "error"
        assert (await server.client.get("/api/conversations")).json()["results"] == []
