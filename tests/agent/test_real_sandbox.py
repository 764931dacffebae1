"""The agent against the real ProcessSandbox and FileEditor."""

from __future__ import annotations

from pathlib import Path

from convo.domain.conversation import AgentState
from convo.llm.scripted import ScriptedLLM, tool_response
from convo.runtime.base import SandboxSpec
from convo.runtime.process import ProcessSandboxFactory
from tests.agent.conftest import HarnessFactory


async def test_real_shell_and_editor(make_harness: HarnessFactory, tmp_path: Path) -> None:
    sandbox = ProcessSandboxFactory().create(
        SandboxSpec(conversation_id="c1", workspace=tmp_path / "ws", command_timeout_seconds=10)
    )
    await sandbox.start()
    try:
        ws = sandbox.workspace_path
        llm = ScriptedLLM(
            [
                tool_response(
                    "execute_bash", {"command": "mkdir sub && cd sub && echo hi > a.txt"}
                ),
                tool_response("execute_bash", {"command": "pwd && cat a.txt"}),
                tool_response(
                    "str_replace_editor",
                    {"command": "create", "path": f"{ws}/n.txt", "file_text": "alpha\nbeta\n"},
                ),
                tool_response(
                    "str_replace_editor",
                    {
                        "command": "str_replace",
                        "path": f"{ws}/n.txt",
                        "old_str": "alpha",
                        "new_str": "gamma",
                    },
                ),
                tool_response("str_replace_editor", {"command": "view", "path": f"{ws}/n.txt"}),
                tool_response(
                    "str_replace_editor",
                    {
                        "command": "str_replace",
                        "path": f"{ws}/n.txt",
                        "old_str": "missing",
                        "new_str": "x",
                    },
                ),
                tool_response(
                    "execute_bash", {"command": "exit_code_test() { return 3; }; exit_code_test"}
                ),
                tool_response("finish", {"message": "done"}),
            ]
        )
        h = make_harness(llm, sandbox=sandbox, editor=None)  # the default: FileEditor
        h.send("work")
        h.start()
        await h.settle(AgentState.FINISHED, timeout=30)

        runs = [e for e in h.of("run") if e.observation]
        assert runs[1].extras is not None
        assert runs[1].extras["metadata"]["working_dir"].endswith("/sub")  # cwd persists
        assert "hi" in str(runs[1].content)
        assert runs[2].extras is not None and runs[2].extras["metadata"]["exit_code"] == 3
        assert (tmp_path / "ws" / "n.txt").read_text() == "gamma\nbeta\n"
        edits = [e for e in h.of("edit") if e.observation]
        assert edits[-1].extras is not None and "gamma" in edits[-1].extras["diff"]
        read = [e for e in h.of("read") if e.observation]
        assert "gamma" in str(read[0].content)
        failed = h.errors()
        assert len(failed) == 1 and failed[0].tool_call_metadata is not None  # back to the LLM
    finally:
        await sandbox.close()
