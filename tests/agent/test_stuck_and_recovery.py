"""Stuck patterns fire through the loop; a restarted loop closes interrupted actions."""

from __future__ import annotations

import asyncio

import pytest

from convo.agent import stuck
from convo.domain.conversation import AgentState
from convo.llm.base import LLMResponse
from convo.llm.scripted import ScriptedLLM, text_response, tool_response
from convo.runtime.fake import FakeSandbox, RecordedCommand
from tests.agent.conftest import HarnessFactory


def _bash(command: str) -> LLMResponse:
    return tool_response("execute_bash", {"command": command})


@pytest.mark.parametrize(
    ("script", "pattern", "calls"),
    [
        ([_bash("ls")] * 5, stuck.REPEATED_PAIR, 4),
        ([tool_response("execute_bash", {"cmd": "ls"})] * 4, stuck.REPEATED_ERROR, 3),
        ([_bash("a"), _bash("b")] * 4, stuck.ALTERNATING, 6),
    ],
    ids=["repeated-pair", "repeated-error", "alternating"],
)
async def test_stuck_patterns_fire(
    make_harness: HarnessFactory, script: list[LLMResponse], pattern: str, calls: int
) -> None:
    llm = ScriptedLLM(script)
    h = make_harness(llm)
    h.send("go")
    h.start()
    await h.settle(AgentState.ERROR)
    assert len(llm.requests) == calls
    error = h.errors()[-1]
    assert error.content == f"Agent got stuck in a loop: {pattern}."
    assert error.extras == {"error_id": "AGENT_ERROR$STUCK"}
    assert h.states()[-1] == "error"


async def test_repeated_agent_message_fires(make_harness: HarnessFactory) -> None:
    llm = ScriptedLLM([text_response("I am not sure.")] * 4)
    h = make_harness(llm)
    h.send("go")
    h.start()
    for _ in range(3):  # the user resumes without a new message: the turn goes on
        await h.settle(AgentState.AWAITING_USER_INPUT)
        h.set_state(AgentState.RUNNING)
    await h.settle(AgentState.ERROR)
    assert len(llm.requests) == 3
    assert h.errors()[-1].content == f"Agent got stuck in a loop: {stuck.REPEATED_MESSAGE}."


async def test_a_user_message_clears_the_pattern(
    make_harness: HarnessFactory, sandbox: FakeSandbox
) -> None:
    llm = ScriptedLLM([_bash("ls")] * 3 + [_bash("ls")] * 3 + [text_response("ok")])
    h = make_harness(llm)

    async def speak_on_third(_command: RecordedCommand) -> None:
        if len(sandbox.commands) == 3:
            h.send("try once more")  # seen at the next step: the count starts over

    sandbox.on_run = speak_on_third
    h.send("go")
    h.start()
    await h.settle(AgentState.AWAITING_USER_INPUT)
    assert h.errors() == []


async def test_varied_steps_do_not_fire(make_harness: HarnessFactory, sandbox: FakeSandbox) -> None:
    llm = ScriptedLLM(
        [_bash(f"echo {n}") for n in range(8)] + [tool_response("finish", {"message": "ok"})]
    )
    h = make_harness(llm)
    h.send("go")
    h.start()
    await h.settle(AgentState.FINISHED)
    assert h.errors() == [] and len(sandbox.commands) == 8


async def test_restart_records_the_interrupted_action_and_resumes(
    make_harness: HarnessFactory,
    sandbox: FakeSandbox,
) -> None:
    started = asyncio.Event()

    async def hang(_command: RecordedCommand) -> None:
        started.set()
        await asyncio.Event().wait()

    sandbox.on_run = hang
    first = make_harness(ScriptedLLM([_bash("make build")]))
    first.send("build it")
    first.start()
    await asyncio.wait_for(started.wait(), 5)
    await first.stop()  # the process died mid-command: the action has no observation
    assert first.kinds()[-1] == ("agent", "run")
    action = first.events[-1]

    sandbox.on_run = None
    llm = ScriptedLLM([tool_response("finish", {"message": "resumed"})])
    second = make_harness(llm, history=list(first.events))
    second.start()
    await second.settle(AgentState.FINISHED)

    new = second.events[len(first.events) :]
    interrupted = new[0]
    assert interrupted.observation == "error" and interrupted.cause == action.id
    assert "interrupted" in str(interrupted.content)
    assert second.states()[-2:] == ["running", "finished"]
    messages = llm.requests[0].messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[2]["tool_calls"][0]["function"]["name"] == "execute_bash"
    assert messages[3]["tool_call_id"] == messages[2]["tool_calls"][0]["id"]
    assert "interrupted" in messages[3]["content"]


async def test_restart_after_a_finished_turn_waits(make_harness: HarnessFactory) -> None:
    first = make_harness(ScriptedLLM([tool_response("finish", {"message": "done"})]))
    first.send("go")
    first.start()
    await first.settle(AgentState.FINISHED)
    await first.stop()

    llm = ScriptedLLM([text_response("more?")])
    second = make_harness(llm, history=list(first.events))
    second.start()
    await second.settle(AgentState.AWAITING_USER_INPUT)
    assert llm.requests == []
    second.send("one more thing")
    await second.until(lambda: len(llm.requests) == 1)
    await second.settle(AgentState.AWAITING_USER_INPUT)
    roles = [m["role"] for m in llm.requests[0].messages]
    # the finish call gets a placeholder result so the message list stays valid
    assert roles == ["system", "user", "assistant", "tool", "user"]
