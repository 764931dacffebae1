"""The agent loop with ScriptedLLM and FakeSandbox: events, states, caps and recovery."""

from __future__ import annotations

import asyncio
import json

import pytest

from convo.agent.controller import AgentConfig
from convo.agent.start_events import WorkspaceContext
from convo.domain.conversation import AgentState
from convo.domain.events import RecallAction, RecallObservation, SystemMessageAction
from convo.errors import LLMAuthenticationError, LLMConnectionError
from convo.llm.base import LLMUsage
from convo.llm.scripted import ScriptedLLM, text_response, tool_response
from convo.runtime.fake import FakeSandbox, RecordedCommand
from tests.agent.conftest import HarnessFactory

RUNNING, AWAITING, ERROR = AgentState.RUNNING, AgentState.AWAITING_USER_INPUT, AgentState.ERROR


async def test_run_create_edit_finish(make_harness: HarnessFactory, sandbox: FakeSandbox) -> None:
    sandbox.responses["ls"] = sandbox.result("a.txt\n")
    llm = ScriptedLLM(
        [
            tool_response("execute_bash", {"command": "ls", "timeout": 7}, content="Looking."),
            tool_response(
                "str_replace_editor",
                {"command": "create", "path": "/workspace/n.txt", "file_text": "alpha\n"},
            ),
            tool_response(
                "str_replace_editor",
                {
                    "command": "str_replace",
                    "path": "/workspace/n.txt",
                    "old_str": "alpha",
                    "new_str": "beta",
                },
            ),
            tool_response("str_replace_editor", {"command": "view", "path": "/workspace/n.txt"}),
            tool_response("finish", {"message": "All done."}),
        ]
    )
    h = make_harness(llm)
    h.send("Do the thing")
    h.start()
    await h.settle(AgentState.FINISHED)

    assert h.kinds() == [
        ("user", "message"),
        ("agent", "system"),  # the system prompt and tools, as OpenHands opens a conversation
        ("user", "recall"),  # the workspace context of the first message
        ("environment", "recall"),
        ("agent", "run"),
        ("agent", "run"),
        ("agent", "edit"),
        ("agent", "edit"),
        ("agent", "edit"),
        ("agent", "edit"),
        ("agent", "read"),
        ("agent", "read"),
        ("agent", "finish"),
    ]
    assert h.states() == ["running", "finished"]
    assert [e.id for e in h.events] == list(range(len(h.events)))
    assert (sandbox.root / "n.txt").read_text() == "beta\n"
    assert sandbox.commands == [RecordedCommand("ls", 7.0, False)]

    run_action, run_obs = h.of("run")
    assert run_action.args is not None and run_action.args["thought"] == "Looking."
    assert run_action.args["command"] == "ls" and run_action.timeout == 7.0
    assert run_action.args["blocking"] is True
    assert run_obs.cause == run_action.id and run_obs.content == "a.txt\n"
    assert run_obs.extras is not None and run_obs.extras["metadata"]["exit_code"] == 0
    assert run_obs.extras["metadata"]["working_dir"] == "/workspace"
    assert run_action.llm_metrics is not None and run_obs.llm_metrics is None

    edit_obs = h.of("edit")[-1]
    assert edit_obs.extras is not None
    assert (
        edit_obs.extras["old_content"] == "alpha\n" and edit_obs.extras["new_content"] == "beta\n"
    )
    assert "+beta" in edit_obs.extras["diff"]
    finish = h.of("finish")[0]
    assert finish.args == {"final_thought": "All done.", "outputs": {}, "thought": ""}

    # every later request replays the tool calls with their results, paired by id
    last = llm.requests[-1].messages
    assert last[0]["role"] == "system" and "/workspace" in last[0]["content"]
    assert last[1] == {"role": "user", "content": "Do the thing"}
    calls = [m for m in last if m["role"] == "assistant"]
    results = [m for m in last if m["role"] == "tool"]
    assert [c["tool_calls"][0]["id"] for c in calls] == [r["tool_call_id"] for r in results]
    assert "a.txt" in results[0]["content"] and "exit code 0" in results[0]["content"]
    assert {t["function"]["name"] for t in llm.requests[0].tools} == {
        "execute_bash",
        "str_replace_editor",
        "think",
        "finish",
    }


async def test_text_answer_waits_for_the_user_and_reports_metrics(
    make_harness: HarnessFactory,
) -> None:
    usage = LLMUsage(prompt_tokens=10, completion_tokens=5, cost=0.25, latency_seconds=0.1)
    llm = ScriptedLLM(
        [
            text_response("Which file?", usage=usage),
            tool_response("think", {"thought": "ok"}, usage=usage),
            text_response("Done", usage=usage),
        ]
    )
    h = make_harness(llm)
    h.start()
    await h.settle(AWAITING)
    assert h.states() == ["awaiting_user_input"] and llm.requests == []

    h.send("hello")
    await h.until(lambda: len(h.of("message")) == 2)
    await h.settle(AWAITING)
    answer = h.of("message")[1]
    assert answer.source == "agent" and answer.args is not None
    assert answer.args["content"] == "Which file?" and answer.args["wait_for_response"] is True
    assert answer.llm_metrics is not None and answer.llm_metrics.accumulated_cost == 0.25

    h.send("README.md")
    await h.until(lambda: len(h.of("message")) == 4)
    await h.settle(AWAITING)
    metrics = h.of("message")[3].llm_metrics
    assert metrics is not None and metrics.accumulated_cost == 0.75
    assert metrics.accumulated_token_usage.prompt_tokens == 30
    # one entry per LLM call of the conversation, not only the last one
    assert [c.cost for c in metrics.costs] == [0.25, 0.25, 0.25]
    assert [u.per_turn_token for u in metrics.token_usages] == [15, 15, 15]
    assert len(metrics.response_latencies) == 3
    assert h.of("think")[1].content == "Your thought has been logged."
    assert [m["role"] for m in llm.requests[1].messages] == ["system", "user", "assistant", "user"]


async def test_message_sent_mid_step_is_seen_next_step(
    make_harness: HarnessFactory,
    sandbox: FakeSandbox,
) -> None:
    llm = ScriptedLLM(
        [
            tool_response("execute_bash", {"command": "make"}),
            tool_response("finish", {"message": "ok"}),
        ]
    )
    h = make_harness(llm)

    async def user_speaks_while_running(_command: RecordedCommand) -> None:
        h.send("also run the tests")

    sandbox.on_run = user_speaks_while_running
    h.send("build it")
    h.start()
    await h.settle(AgentState.FINISHED)
    second = llm.requests[1].messages
    assert second[-1] == {"role": "user", "content": "also run the tests"}
    assert second[-2]["role"] == "tool"
    assert h.states() == ["running", "finished"]


async def test_max_iterations_then_a_new_message_extends(make_harness: HarnessFactory) -> None:
    llm = ScriptedLLM([tool_response("execute_bash", {"command": f"echo {n}"}) for n in range(4)])
    h = make_harness(llm, config=AgentConfig(max_iterations=2))
    h.send("go")
    h.start()
    await h.settle(ERROR)
    assert len(llm.requests) == 2
    (error,) = h.errors()
    assert "maximum iteration" in str(error.content) and "(2 steps" in str(error.content)
    assert error.extras == {"error_id": "AGENT_ERROR$MAX_ITERATIONS"}

    h.send("keep going")
    await h.until(lambda: len(h.errors()) == 2)
    await h.settle(ERROR)
    assert len(llm.requests) == 4
    assert h.states() == ["running", "error", "running", "error"]
    # the model is told why it was stopped
    assert any("maximum iteration" in str(m["content"]) for m in llm.requests[2].messages)


async def test_budget_cap(make_harness: HarnessFactory) -> None:
    usage = LLMUsage(cost=0.6)
    llm = ScriptedLLM(
        [tool_response("execute_bash", {"command": f"echo {n}"}, usage=usage) for n in range(5)]
    )
    h = make_harness(llm, config=AgentConfig(max_budget_per_task=1.0))
    h.send("go")
    h.start()
    await h.settle(ERROR)
    assert len(llm.requests) == 2
    (error,) = h.errors()
    assert "maximum budget" in str(error.content) and "$1.2000" in str(error.content)

    h.send("more")  # the budget grows by another max_budget_per_task
    await h.until(lambda: len(h.errors()) == 2)
    assert len(llm.requests) == 4


async def test_llm_auth_error_then_a_later_message_works(make_harness: HarnessFactory) -> None:
    llm = ScriptedLLM(
        [
            LLMAuthenticationError("401 from provider"),
            LLMConnectionError("refused"),
            text_response("Hi!"),
        ]
    )
    h = make_harness(llm)
    h.send("hello")
    h.start()
    await h.settle(ERROR)
    (error,) = h.errors()
    assert str(error.content).startswith("LLM authentication failed: check the API key")
    assert error.extras == {"error_id": "STATUS$ERROR_LLM_AUTHENTICATION"}

    h.send("again")
    await h.until(lambda: len(h.errors()) == 2)
    assert "Could not connect to the LLM" in str(h.errors()[1].content)
    await h.settle(ERROR)

    h.send("third time")
    await h.until(lambda: len(h.of("message")) == 4)
    await h.settle(AWAITING)
    assert h.states() == ["running", "error", "running", "error", "running", "awaiting_user_input"]
    # LLM failures are for the user, not replayed to the model
    assert not any("authentication" in str(m["content"]) for m in llm.requests[-1].messages)


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("execute_bash", "{not json", "not valid JSON"),
        ("browse", {"url": "x"}, "Unknown tool 'browse'"),
        ("execute_bash", {}, "Missing required argument(s) for execute_bash: command"),
        ("str_replace_editor", {"command": "create", "path": "/workspace/x"}, "file_text"),
        ("str_replace_editor", {"command": "delete", "path": "/workspace/x"}, "Unknown"),
        ("execute_bash", {"command": "ls", "timeout": "soon"}, "must be a number"),
    ],
)
async def test_invalid_tool_call_is_an_error_fed_back(
    make_harness: HarnessFactory,
    name: str,
    arguments: dict[str, str] | str,
    expected: str,
) -> None:
    bad = tool_response(name, arguments, call_id="call_bad")
    llm = ScriptedLLM([bad, tool_response("finish", {"message": "sorry"})])
    h = make_harness(llm)
    h.send("go")
    h.start()
    await h.settle(AgentState.FINISHED)
    (error,) = h.errors()
    assert expected in str(error.content)
    assert error.tool_call_metadata is not None
    assert error.tool_call_metadata.tool_call_id == "call_bad"
    tool_message = llm.requests[1].messages[-1]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_bad"
    assert tool_message["content"].startswith("ERROR:") and expected in tool_message["content"]
    raw = llm.requests[1].messages[-2]["tool_calls"][0]["function"]["arguments"]
    assert raw == (arguments if isinstance(arguments, str) else json.dumps(arguments))


async def test_pause_stop_and_resume(make_harness: HarnessFactory, sandbox: FakeSandbox) -> None:
    llm = ScriptedLLM(
        [
            tool_response("execute_bash", {"command": "one"}),
            tool_response("execute_bash", {"command": "two"}),
            tool_response("finish", {"message": "done"}),
        ]
    )
    h = make_harness(llm)

    async def pause_after_first(command: RecordedCommand) -> None:
        if command.command == "one":
            h.set_state(AgentState.PAUSED)

    sandbox.on_run = pause_after_first
    h.send("go")
    h.start()
    await h.settle(AgentState.PAUSED)
    assert len(llm.requests) == 1
    h.set_state(AgentState.RUNNING)
    await h.settle(AgentState.FINISHED)
    h.set_state(AgentState.STOPPED)
    await h.settle(AgentState.STOPPED)
    assert h.states() == ["running", "paused", "running", "finished", "stopped"]
    assert [c.command for c in sandbox.commands] == ["one", "two"]


async def test_tool_crash_is_fed_back_and_unexpected_errors_keep_the_loop(
    make_harness: HarnessFactory,
    sandbox: FakeSandbox,
) -> None:
    sandbox.script.append(RuntimeError("shell exploded"))
    llm = ScriptedLLM(
        [
            tool_response("execute_bash", {"command": "boom"}),
            RuntimeError("bug in the client"),
            text_response("recovered"),
        ]
    )
    h = make_harness(llm)
    h.send("go")
    h.start()
    await h.settle(ERROR)
    crash, unexpected = h.errors()
    assert crash.cause == h.of("run")[0].id and "shell exploded" in str(crash.content)
    assert "bug in the client" in str(unexpected.content)
    assert unexpected.extras == {"error_id": "STATUS$ERROR_UNEXPECTED"}
    h.send("try again")
    await h.settle(AWAITING)
    assert h.of("message")[-1].args == {
        "content": "recovered",
        "file_urls": [],
        "image_urls": [],
        "wait_for_response": True,
    }


async def test_cancellation_propagates(make_harness: HarnessFactory, sandbox: FakeSandbox) -> None:
    blocked = asyncio.Event()

    async def hang(_command: RecordedCommand) -> None:
        blocked.set()
        await asyncio.Event().wait()

    sandbox.on_run = hang
    h = make_harness(ScriptedLLM([tool_response("execute_bash", {"command": "sleep"})]))
    h.send("go")
    h.start()
    await asyncio.wait_for(blocked.wait(), 5)
    assert h.task is not None
    h.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await h.task


async def test_a_conversation_opens_with_the_system_action_and_the_workspace_context(
    make_harness: HarnessFactory,
) -> None:
    llm = ScriptedLLM([text_response("Hi"), text_response("Again")])
    config = AgentConfig(
        workspace=WorkspaceContext(
            repository="acme/widgets", branch="main", instructions="Run make"
        )
    )
    h = make_harness(llm, config=config)
    h.send("hello")
    h.start()
    await h.settle(AWAITING)
    system = next(e for e in h.events if isinstance(e, SystemMessageAction))
    assert system.content == llm.requests[0].messages[0]["content"]  # the prompt the LLM got
    assert [t["function"]["name"] for t in system.tools or []] == [
        t["function"]["name"] for t in llm.requests[0].tools
    ]
    action = next(e for e in h.events if isinstance(e, RecallAction))
    observation = next(e for e in h.events if isinstance(e, RecallObservation))
    assert (action.source, action.recall_type, action.query) == (
        "user",
        "workspace_context",
        "hello",
    )
    assert observation.cause == action.id and observation.source == "environment"
    assert (observation.repo_name, observation.repo_directory, observation.repo_branch) == (
        "acme/widgets",
        "widgets",
        "main",
    )
    assert observation.repo_instructions == "Run make" and observation.working_dir
    h.send("more")
    await h.until(lambda: len(h.of("message")) == 4)
    await h.settle(AWAITING)
    # once per conversation (a later message recalls knowledge, here none: a null answer),
    # and never shown to the model as messages
    assert sum(isinstance(e, SystemMessageAction) for e in h.events) == 1
    recalls = [e for e in h.events if isinstance(e, RecallAction)]
    assert [r.recall_type for r in recalls] == ["workspace_context", "knowledge"]
    assert h.kinds()[-4:-1] == [("user", "message"), ("user", "recall"), ("environment", "null")]
    assert [m["role"] for m in llm.requests[1].messages] == ["system", "user", "assistant", "user"]
