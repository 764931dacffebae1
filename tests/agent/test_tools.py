"""Tool specs and the OpenHands JSON of actions and observations."""

from __future__ import annotations

from pathlib import Path

import pytest

from convo.agent.executor import run_observation, think_observation
from convo.agent.history import build_messages
from convo.agent.prompts import build_system_prompt
from convo.agent.tools import InvalidToolCall, action_from_tool_call, tool_specs
from convo.domain.events import EventSource, message_action
from convo.errors import PathOutsideWorkspace
from convo.llm.base import LLMResponse, ToolCall
from convo.runtime.base import CommandResult
from convo.runtime.fake import FakeSandbox


def _response(*calls: ToolCall, content: str | None = None) -> LLMResponse:
    return LLMResponse(content=content, tool_calls=list(calls), response_id="resp-1")


def test_specs_use_openhands_names_and_parameters() -> None:
    specs = {s["function"]["name"]: s["function"]["parameters"] for s in tool_specs()}
    assert set(specs) == {"execute_bash", "str_replace_editor", "think", "finish"}
    assert set(specs["execute_bash"]["properties"]) == {"command", "is_input", "timeout"}
    assert specs["execute_bash"]["properties"]["is_input"]["enum"] == ["true", "false"]
    editor = specs["str_replace_editor"]
    assert editor["properties"]["command"]["enum"] == [
        "view",
        "create",
        "str_replace",
        "insert",
        "undo_edit",
    ]
    assert set(editor["properties"]) == {
        "command",
        "path",
        "file_text",
        "old_str",
        "new_str",
        "insert_line",
        "view_range",
    }
    assert specs["think"]["required"] == ["thought"]
    assert specs["finish"]["required"] == ["message"]
    assert tool_specs() is not tool_specs()  # callers may mutate their copy


def test_run_action_wire_shape() -> None:
    call = ToolCall("call_1", "execute_bash", '{"command": "ls", "is_input": "false"}')
    action = action_from_tool_call(
        call, _response(call, content="Look"), thought="Look", default_timeout=30
    )
    wire = action.to_wire()
    assert wire["action"] == "run" and wire["source"] == "agent"
    assert wire["args"] == {
        "command": "ls",
        "is_input": False,
        "thought": "Look",
        "blocking": False,
        "is_static": False,
        "cwd": None,
        "hidden": False,
        "confirmation_state": "confirmed",
        "security_risk": -1,
    }
    assert wire["timeout"] == 30
    metadata = wire["tool_call_metadata"]
    assert metadata["function_name"] == "execute_bash" and metadata["tool_call_id"] == "call_1"
    assert metadata["model_response"]["id"] == "resp-1"
    assert metadata["total_calls_in_response"] == 1

    stored = action.stored(4)
    observation = run_observation(stored, CommandResult("out\n", 2, "/workspace/src"))
    obs = observation.to_wire()
    assert obs["observation"] == "run" and obs["cause"] == 4 and obs["success"] is False
    assert obs["extras"]["command"] == "ls"
    assert obs["extras"]["metadata"]["exit_code"] == 2
    assert obs["extras"]["metadata"]["working_dir"] == "/workspace/src"
    assert obs["tool_call_metadata"] == metadata


def test_editor_view_is_a_read_action_and_others_are_edits() -> None:
    view = ToolCall(
        "c1", "str_replace_editor", '{"command": "view", "path": "/w/a.py", "view_range": [1, 5]}'
    )
    read = action_from_tool_call(view, _response(view))
    assert read.action == "read" and read.args is not None
    assert read.args["path"] == "/w/a.py" and read.args["view_range"] == [1, 5]

    insert = ToolCall(
        "c2",
        "str_replace_editor",
        '{"command": "insert", "path": "/w/a.py", "insert_line": "3", "new_str": "x"}',
    )
    edit = action_from_tool_call(insert, _response(insert))
    assert edit.action == "edit" and edit.args is not None
    assert edit.args["command"] == "insert" and edit.args["insert_line"] == 3

    with pytest.raises(InvalidToolCall, match="view_range"):
        bad = ToolCall(
            "c3", "str_replace_editor", '{"command": "view", "path": "/w", "view_range": "1-5"}'
        )
        action_from_tool_call(bad, _response(bad))


def test_think_and_finish_actions() -> None:
    think = ToolCall("c1", "think", '{"thought": "plan"}')
    action = action_from_tool_call(think, _response(think)).stored(1)
    assert action.action == "think" and action.args == {"thought": "plan"}
    observation = think_observation(action)
    assert observation.observation == "think" and observation.cause == 1

    finish = ToolCall("c2", "finish", '{"message": "bye"}')
    done = action_from_tool_call(finish, _response(finish))
    assert done.action == "finish" and done.message == "bye"
    assert done.args == {"final_thought": "bye", "outputs": {}, "thought": ""}


def test_history_pairs_multiple_calls_of_one_response() -> None:
    first = ToolCall("a", "think", '{"thought": "one"}')
    second = ToolCall("b", "execute_bash", '{"command": "ls"}')
    response = _response(first, second)
    user = message_action("hi", EventSource.USER, image_urls=["http://img/x.png"]).stored(0)
    think = action_from_tool_call(first, response).stored(1)
    run = action_from_tool_call(second, response).stored(2)
    events = [
        user,
        think,
        think_observation(think).stored(3),
        run,
        run_observation(run, CommandResult("x", 0, "/w")).stored(4),
    ]
    messages = build_messages("sys", events)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "tool"]
    assert messages[1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "http://img/x.png"},
    }
    assert [c["id"] for c in messages[2]["tool_calls"]] == ["a", "b"]
    assert [m["tool_call_id"] for m in messages[3:]] == ["a", "b"]


def test_system_prompt_mentions_workspace_and_extra_instructions() -> None:
    prompt = build_system_prompt(
        "/ws", extra_instructions="Use tabs.", repository_instructions=["Run make test."]
    )
    assert "/ws" in prompt and "finish" in prompt
    assert "Use tabs." in prompt and "Run make test." in prompt


def test_fake_sandbox_maps_paths_into_its_root(tmp_path: Path) -> None:
    sandbox = FakeSandbox(tmp_path, workspace_path="/workspace")
    assert sandbox.workspace.resolve("/workspace/a/b.txt") == "a/b.txt"
    assert sandbox.workspace.resolve("c.txt") == "c.txt"
    for outside in ("/etc/passwd", "../x", "/workspace/../etc"):
        with pytest.raises(PathOutsideWorkspace):
            sandbox.workspace.resolve(outside)
