"""Confirmation mode: run and edit actions wait for user_confirmed / user_rejected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from convo.agent.controller import AgentConfig
from convo.agent.recovery import interrupted_actions
from convo.api.app import Overrides
from convo.domain.conversation import AgentState, UserSettings
from convo.llm.base import LLMResponse, ToolCall
from convo.llm.scripted import ScriptedLLM, text_response, tool_response
from convo.runtime.fake import FakeSandbox
from tests.agent.conftest import HarnessFactory
from tests.api.conftest import make_settings, serve, wait_for
from tests.stream.helpers import FakeSandboxFactory, SocketClient

CONFIRM = AgentConfig(confirmation_mode=True)


def _bash(command: str) -> LLMResponse:
    return tool_response("execute_bash", {"command": command})


def _state(event: Any) -> str | None:
    return (event.args or {}).get("confirmation_state")


async def test_a_confirmed_command_runs(make_harness: HarnessFactory, sandbox: FakeSandbox) -> None:
    llm = ScriptedLLM([_bash("echo hi"), tool_response("finish", {"message": "done"})])
    h = make_harness(llm, config=CONFIRM)
    h.send("Say hi.")
    h.start()
    await h.settle(AgentState.AWAITING_USER_CONFIRMATION)
    [waiting] = h.of("run")
    assert _state(waiting) == "awaiting_confirmation" and sandbox.commands == []

    h.set_state(AgentState.USER_CONFIRMED)
    await h.settle(AgentState.FINISHED)
    assert [c.command for c in sandbox.commands] == ["echo hi"]
    actions = [e for e in h.of("run") if e.is_action]
    assert [_state(a) for a in actions] == ["awaiting_confirmation", "confirmed"]
    observation = next(e for e in h.of("run") if not e.is_action)
    assert observation.cause == actions[1].id
    assert h.states()[-4:] == [
        "awaiting_user_confirmation",
        "user_confirmed",
        "running",
        "finished",
    ]
    assert interrupted_actions(h.events) == []


async def test_a_rejected_edit_is_not_made_and_the_llm_is_told(
    make_harness: HarnessFactory, sandbox: FakeSandbox
) -> None:
    create = tool_response(
        "str_replace_editor", {"command": "create", "path": "/workspace/x.txt", "file_text": "x"}
    )
    llm = ScriptedLLM([create, text_response("Understood.")])
    h = make_harness(llm, config=CONFIRM)
    h.send("Create x.txt.")
    h.start()
    await h.settle(AgentState.AWAITING_USER_CONFIRMATION)
    h.set_state(AgentState.USER_REJECTED)
    await h.settle(AgentState.AWAITING_USER_INPUT)
    assert not (sandbox.root / "x.txt").exists()
    [rejected] = h.of("user_rejected")
    assert "rejected by the user" in str(rejected.content)
    assert "user_rejected" in h.states()

    h.send("Fine, don't.")
    await h.settle(AgentState.AWAITING_USER_INPUT)
    tool_messages = [m for m in llm.requests[-1].messages if m["role"] == "tool"]
    assert "rejected by the user" in tool_messages[0]["content"]


async def test_reads_and_thoughts_need_no_confirmation(
    make_harness: HarnessFactory, sandbox: FakeSandbox
) -> None:
    (sandbox.root / "a.txt").write_text("hello")
    llm = ScriptedLLM(
        [
            tool_response("str_replace_editor", {"command": "view", "path": "/workspace/a.txt"}),
            tool_response("think", {"thought": "ok"}),
            tool_response("finish", {"message": "done"}),
        ]
    )
    h = make_harness(llm, config=CONFIRM)
    h.send("Read a.txt.")
    h.start()
    await h.settle(AgentState.FINISHED)
    assert "awaiting_user_confirmation" not in h.states()


async def test_later_calls_of_the_same_response_wait_behind_the_first(
    make_harness: HarnessFactory, sandbox: FakeSandbox
) -> None:
    two = LLMResponse(
        content="Two commands.",
        tool_calls=[
            ToolCall("c1", "execute_bash", json.dumps({"command": "echo one"})),
            ToolCall("c2", "execute_bash", json.dumps({"command": "echo two"})),
        ],
        response_id="two-calls",
    )
    llm = ScriptedLLM([two, tool_response("finish", {"message": "done"})])
    h = make_harness(llm, config=CONFIRM)
    h.send("Run both.")
    h.start()
    await h.settle(AgentState.AWAITING_USER_CONFIRMATION)
    h.set_state(AgentState.USER_CONFIRMED)
    await h.until(lambda: len([e for e in h.of("run") if e.is_action]) == 3)
    await h.settle(AgentState.AWAITING_USER_CONFIRMATION)
    assert [c.command for c in sandbox.commands] == ["echo one"]
    h.set_state(AgentState.USER_CONFIRMED)
    await h.settle(AgentState.FINISHED)
    assert [c.command for c in sandbox.commands] == ["echo one", "echo two"]
    assert len(llm.requests) == 2


async def test_a_restarted_loop_still_waits_for_the_decision(
    make_harness: HarnessFactory, sandbox: FakeSandbox
) -> None:
    first = make_harness(ScriptedLLM([_bash("make")]), config=CONFIRM)
    first.send("Build.")
    first.start()
    await first.settle(AgentState.AWAITING_USER_CONFIRMATION)
    await first.stop()

    llm = ScriptedLLM([tool_response("finish", {"message": "built"})])
    second = make_harness(llm, config=CONFIRM, history=list(first.events))
    second.start()
    await second.settle(AgentState.AWAITING_USER_CONFIRMATION)
    assert second.errors() == []  # not reported as interrupted
    second.set_state(AgentState.USER_CONFIRMED)
    await second.settle(AgentState.FINISHED)
    assert [c.command for c in sandbox.commands] == ["make"]


async def test_a_new_message_rejects_the_waiting_action(
    make_harness: HarnessFactory, sandbox: FakeSandbox
) -> None:
    llm = ScriptedLLM([_bash("rm -rf build"), text_response("OK, I will not.")])
    h = make_harness(llm, config=CONFIRM)
    h.send("Clean up.")
    h.start()
    await h.settle(AgentState.AWAITING_USER_CONFIRMATION)
    h.send("Actually, keep the build directory.")
    await h.settle(AgentState.AWAITING_USER_INPUT)
    assert sandbox.commands == []
    assert "new message" in str(h.of("user_rejected")[0].content)


# --- over the HTTP API -----------------------------------------------------------------------
async def test_confirm_and_reject_over_post_events(tmp_path: Path) -> None:
    script = [
        _bash("echo confirmed > confirmed.txt"),
        tool_response("finish", {"message": "done"}),
        _bash("echo rejected > rejected.txt"),
        text_response("I did not run it."),
    ]
    llm = ScriptedLLM(script)
    overrides = Overrides(llm_factory=lambda _config: llm)
    async with serve(make_settings(tmp_path), overrides) as server:
        await server.manager.storage.settings.save_settings(
            None, UserSettings(confirmation_mode=True)
        )

        async def events(cid: str) -> list[dict[str, Any]]:
            page = await server.client.get(f"/api/conversations/{cid}/events?limit=100")
            found: list[dict[str, Any]] = page.json()["events"]
            return found

        async def reaches(cid: str, state: str) -> None:
            async def check() -> bool:
                return any(
                    e.get("extras", {}).get("agent_state") == state for e in await events(cid)
                )

            await wait_for(check, timeout=20)

        async def decide(cid: str, state: str) -> None:
            sent = await server.client.post(
                f"/api/conversations/{cid}/events",
                json={"action": "change_agent_state", "args": {"agent_state": state}},
            )
            assert sent.status_code == 200, sent.text

        for decision, final in (
            ("user_confirmed", "finished"),
            ("user_rejected", "awaiting_user_input"),
        ):
            created = await server.client.post(
                "/api/conversations", json={"initial_user_msg": f"Try {decision}."}
            )
            cid = created.json()["conversation_id"]
            await reaches(cid, "awaiting_user_confirmation")
            workspace = server.manager.workspace_path(cid)
            assert not any(workspace.glob("*.txt"))
            await decide(cid, decision)
            await reaches(cid, final)
            if decision == "user_confirmed":
                assert (workspace / "confirmed.txt").read_text() == "confirmed\n"
            else:
                assert not (workspace / "rejected.txt").exists()
                assert any(e.get("observation") == "user_rejected" for e in await events(cid))


async def test_confirm_over_the_socket(tmp_path: Path) -> None:
    llm = ScriptedLLM([_bash("echo over-socket"), tool_response("finish", {"message": "done"})])
    factory = FakeSandboxFactory()
    overrides = Overrides(sandbox_factory=factory, llm_factory=lambda _config: llm)
    async with serve(make_settings(tmp_path), overrides) as server:
        await server.manager.storage.settings.save_settings(
            None, UserSettings(confirmation_mode=True)
        )
        created = await server.client.post("/api/conversations", json={"initial_user_msg": "Go."})
        cid = created.json()["conversation_id"]
        client = SocketClient(server.base_url)
        await client.connect(cid, latest_event_id=-1)

        def reached(state: str) -> bool:
            return any(e.get("extras", {}).get("agent_state") == state for e in client.events)

        try:
            await wait_for(lambda: reached("awaiting_user_confirmation"), timeout=20)
            waiting = [e for e in client.events if e.get("action") == "run"]
            assert waiting[-1]["args"]["confirmation_state"] == "awaiting_confirmation"
            await client.sio.emit(
                "oh_user_action",
                {"action": "change_agent_state", "args": {"agent_state": "user_confirmed"}},
            )
            await wait_for(lambda: reached("finished"), timeout=20)
            ran = [e for e in client.events if e.get("observation") == "run"]
            assert ran and ran[-1]["extras"]["command"] == "echo over-socket"
        finally:
            await client.disconnect()
