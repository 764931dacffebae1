"""A resumed loop tells the agent what is known of an action the dead loop left open.

The dead loop stored a ``run`` action and no observation. What the action journal kept
decides what the agent is told: the command's real result when it had finished, its exit
status when the shell recorded its end but the result was lost with the server, a run now
when it had never started, "interrupted" only when it was cut off while running.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from convo.agent.controller import Agent
from convo.agent.recovery import JournalView
from convo.domain.conversation import AgentState
from convo.domain.events import CmdOutputMetadata, CmdOutputObservation, Event, EventSource
from convo.llm.base import LLMResponse
from convo.llm.scripted import ScriptedLLM, tool_response
from convo.runtime.base import SandboxSpec
from convo.runtime.exit_record import EXIT_RECORD, exit_status_since, read_exit_record
from convo.runtime.fake import FakeSandbox
from convo.runtime.process import ProcessSandboxFactory
from convo.services.action_journal import ActionJournal
from tests.agent.conftest import HarnessFactory


def _run(command: str) -> LLMResponse:
    return tool_response("execute_bash", {"command": command})


async def _cut_off(make_harness: HarnessFactory, sandbox: FakeSandbox) -> list[Event]:
    """A loop that stored ``mkdir build`` and died before storing its observation."""
    first = make_harness(ScriptedLLM([_run("mkdir build")]))
    started = asyncio.Event()

    async def hang(_command: object) -> None:
        started.set()
        await asyncio.Event().wait()

    sandbox.on_run = hang
    first.send("build it")
    first.start()
    await asyncio.wait_for(started.wait(), 5)
    await first.stop()
    sandbox.on_run = None
    sandbox.commands.clear()
    assert first.events[-1].action == "run"
    return list(first.events)


async def _resume(
    make_harness: HarnessFactory, history: list[Event], journal: JournalView | None
) -> tuple[list[Event], ScriptedLLM]:
    llm = ScriptedLLM([tool_response("finish", {"message": "resumed"})])
    second = make_harness(llm, history=history)
    second.agent = Agent(
        llm=llm, sandbox=second.sandbox, emit=second.store, config=second.config,
        history=history, journal=journal,
    )  # fmt: skip
    second.start()
    await second.settle(AgentState.FINISHED)
    await second.stop()
    return second.events[len(history) :], llm


async def test_a_finished_command_gets_its_real_result(
    make_harness: HarnessFactory, sandbox: FakeSandbox
) -> None:
    history = await _cut_off(make_harness, sandbox)
    action = history[-1]
    result = CmdOutputObservation(
        source=action.source,
        cause=action.id,
        content="created build/",
        command="mkdir build",
        metadata=CmdOutputMetadata(exit_code=0),
        tool_call_metadata=action.tool_call_metadata,
    )
    new, llm = await _resume(
        make_harness, history, JournalView(started=action.id, results={action.id: result})
    )
    assert new[0].cause == action.id and new[0].observation == "run"
    assert new[0].content == "created build/"
    assert sandbox.commands == []  # not run a second time
    tools = [m for m in llm.requests[0].messages if m["role"] == "tool"]
    assert len(tools) == 1 and tools[0]["content"].startswith("created build/")


async def test_a_command_cut_off_while_running_is_interrupted(
    make_harness: HarnessFactory, sandbox: FakeSandbox
) -> None:
    history = await _cut_off(make_harness, sandbox)
    action = history[-1]
    new, _ = await _resume(make_harness, history, JournalView(started=action.id))
    assert new[0].cause == action.id and new[0].observation == "error"
    assert "interrupted" in str(new[0].content)
    assert sandbox.commands == []


async def test_a_command_that_never_started_runs_now(
    make_harness: HarnessFactory, sandbox: FakeSandbox
) -> None:
    history = await _cut_off(make_harness, sandbox)
    action = history[-1]
    sandbox.responses["mkdir build"] = sandbox.result("made it\n")
    new, _ = await _resume(make_harness, history, JournalView(started=action.id - 1))
    assert [c.command for c in sandbox.commands] == ["mkdir build"]
    assert new[0].cause == action.id and new[0].observation == "run"
    assert "made it" in str(new[0].content)


async def test_without_a_journal_an_open_action_is_interrupted(
    make_harness: HarnessFactory, sandbox: FakeSandbox
) -> None:
    history = await _cut_off(make_harness, sandbox)
    new, _ = await _resume(make_harness, history, None)
    assert new[0].observation == "error" and "interrupted" in str(new[0].content)
    assert sandbox.commands == []


async def test_the_journal_survives_the_process(tmp_path: Path) -> None:
    """What one server wrote, the next one (fresh memory) reads from the data dir."""
    action_result = CmdOutputObservation(source=EventSource.AGENT, cause=7, content="ok")
    before = ActionJournal(tmp_path / "results")
    await before.started("c1", 5)
    await before.started("c1", 7)
    await before.record("c1", action_result)
    after = ActionJournal(tmp_path / "results")
    view = await after.view("c1")
    assert view is not None and view.started == 7
    assert view.results[7].content == "ok"
    assert await after.view("c2") is None
    after.forget("c1")
    assert await ActionJournal(tmp_path / "results").view("c1") is None


async def test_a_command_that_ended_unreported_gets_its_exit_status(
    make_harness: HarnessFactory, sandbox: FakeSandbox
) -> None:
    """The shell's exit record changed after the action started: the command had ended (the
    server died before it read the result), so the agent is told its exit status, not
    "interrupted", and it is not run again."""
    history = await _cut_off(make_harness, sandbox)
    action = history[-1]
    new, llm = await _resume(make_harness, history, JournalView(started=action.id, exit_status=2))
    assert new[0].cause == action.id and isinstance(new[0], CmdOutputObservation)
    assert new[0].metadata.exit_code == 2
    assert "interrupted" not in str(new[0].content) and "exit code 2" in str(new[0].content)
    assert sandbox.commands == []
    tools = [m for m in llm.requests[0].messages if m["role"] == "tool"]
    assert len(tools) == 1 and "exit code 2" in tools[0]["content"]


async def test_the_journal_compares_the_shells_exit_record_with_the_one_at_start(
    tmp_path: Path,
) -> None:
    journal = ActionJournal(tmp_path / "results")
    await journal.started("c1", 5, exit_record=f"{'a' * 32} 0")
    # nothing ended since: "interrupted" stays possible
    unchanged = await ActionJournal(tmp_path / "results").view("c1", f"{'a' * 32} 0")
    assert unchanged is not None and unchanged.exit_status is None
    # a command ended since, with status 7 (read by a new server, from the file)
    ended = await ActionJournal(tmp_path / "results").view("c1", f"{'b' * 32} 7")
    assert ended is not None and ended.started == 5 and ended.exit_status == 7
    # not a record the shell writes (the agent's own junk): nothing is concluded
    junk = await ActionJournal(tmp_path / "results").view("c1", "hello 3")
    assert junk is not None and junk.exit_status is None


async def test_the_shell_records_each_commands_exit_status_as_it_ends(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    box = ProcessSandboxFactory().create(
        SandboxSpec(
            conversation_id="c1", workspace=workspace, env={},
            command_timeout_seconds=10.0, max_output_chars=1000,
        )
    )  # fmt: skip
    await box.start()
    try:
        before = read_exit_record(workspace)
        result = await box.run("echo made; (exit 3)")
        assert (result.output, result.exit_code) == ("made", 3)
        after = read_exit_record(workspace)
        assert exit_status_since(before, after) == 3
        result = await box.run("echo ${__CONVO_RC-unset}; set -o noclobber; true")
        assert (result.output, result.exit_code) == ("unset", 0)  # no variable left behind
        assert exit_status_since(after, read_exit_record(workspace)) == 0
        (workspace / EXIT_RECORD).unlink()
        (workspace / EXIT_RECORD).symlink_to(tmp_path / "elsewhere")
        assert read_exit_record(workspace) == ""  # never followed
    finally:
        await box.close()
