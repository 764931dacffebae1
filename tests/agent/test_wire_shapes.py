"""The events convo builds have the keys OpenHands 0.53 writes for the same kind, field for
field (the golden files of tests/domain/golden/openhands hold OpenHands' shapes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from convo.agent import confirmation, recall, start_events
from convo.agent.executor import read_observation, run_observation, think_observation
from convo.agent.tools import action_from_tool_call
from convo.domain.conversation import AgentState
from convo.domain.events import (
    Event,
    EventSource,
    MicroagentKnowledge,
    agent_state_changed,
    change_agent_state_action,
    error_observation,
    message_action,
)
from convo.llm.base import LLMResponse, LLMUsage, ToolCall
from convo.runtime.base import CommandResult

GOLDEN = Path(__file__).parents[1] / "domain" / "golden" / "openhands"
# convo marks every tool call's risk as unknown (-1); OpenHands 0.53 leaves a None out
ALLOWED_EXTRA = {"security_risk"}


def _golden(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((GOLDEN / f"{name}.json").read_text())["event"]
    return event


def _tool_action(name: str, arguments: dict[str, Any], event_id: int) -> Event:
    call = ToolCall("call_1", name, json.dumps(arguments))
    response = LLMResponse(
        content=None,
        tool_calls=[call],
        usage=LLMUsage(prompt_tokens=10, completion_tokens=2),
        response_id="chatcmpl-1",
        model="openai/gpt-4o",
        created=1755166867,
    )
    return action_from_tool_call(call, response).stored(event_id)


def _events() -> dict[str, Event]:
    run = _tool_action("execute_bash", {"command": "ls"}, 3)
    read = _tool_action("str_replace_editor", {"command": "view", "path": "a.py"}, 5)
    edit = _tool_action(
        "str_replace_editor", {"command": "create", "path": "a.py", "file_text": "x"}, 7
    )
    think = _tool_action("think", {"thought": "hm"}, 9)
    message = message_action("hi", EventSource.USER).stored(1)
    workspace = recall.recall_action(message, start_events.WORKSPACE_CONTEXT).stored(2)
    knowledge = recall.recall_action(message, recall.KNOWLEDGE).stored(30)
    context = start_events.WorkspaceContext(
        repository="acme/widgets", branch="main", secrets={"DEPLOY_KEY": "staging deploy key"}
    )
    triggered = [MicroagentKnowledge(name="github", trigger="git", content="Use the API.")]
    return {
        "action_system": start_events.system_action("You are convo.", []).stored(0),
        "action_message_user": message,
        "action_recall": workspace,
        "observation_recall_workspace": recall.workspace_observation(
            workspace, context, "/workspace"
        ).stored(3),
        "observation_recall_knowledge": recall.knowledge_observation(knowledge, triggered).stored(
            31
        ),
        "observation_null": recall.knowledge_observation(knowledge, []).stored(31),
        "action_run": run,
        "observation_run": run_observation(run, CommandResult("x", 0, "/workspace")).stored(4),
        "action_read": read,
        "observation_read": read_observation(read, "1\tx").stored(6),
        "action_edit": edit,
        "action_think": think,
        "observation_think": think_observation(think).stored(10),
        "action_finish": _tool_action("finish", {"message": "done"}, 11),
        "observation_agent_state_changed": agent_state_changed(AgentState.RUNNING).stored(12),
        "observation_error": error_observation("boom", error_id="X", cause=3).stored(13),
        "observation_user_rejected": confirmation.rejection(run, "no").stored(14),
        "action_change_agent_state": change_agent_state_action(
            AgentState.USER_CONFIRMED, EventSource.USER
        ).stored(15),
    }


@pytest.mark.parametrize("name", sorted(_events()))
def test_convo_writes_the_keys_openhands_writes(name: str) -> None:
    ours, theirs = _events()[name].to_wire(), _golden(name)
    optional = {"llm_metrics", "tool_call_metadata", "cause"}  # present when they apply
    assert set(ours) - optional == set(theirs) - optional
    for part in ("args", "extras"):
        if part in theirs:
            assert set(ours[part]) - ALLOWED_EXTRA == set(theirs[part]) - {"_diff_cache"}


def test_tool_call_metadata_carries_the_whole_completion() -> None:
    run = _tool_action("execute_bash", {"command": "ls"}, 3).to_wire()
    metadata = run["tool_call_metadata"]
    golden = _golden("action_run")["tool_call_metadata"]
    assert set(metadata) == set(golden)
    response = metadata["model_response"]
    assert {"id", "created", "model", "object", "choices", "usage"} <= set(response)
    assert (response["model"], response["created"]) == ("openai/gpt-4o", 1755166867)
    assert response["usage"]["total_tokens"] == 12
    assert response["choices"][0]["message"]["tool_calls"][0]["id"] == "call_1"


@pytest.mark.parametrize("name", ["observation_recall_knowledge", "observation_null"])
def test_recall_answers_say_what_openhands_says(name: str) -> None:
    ours, theirs = _events()[name].to_wire(), _golden(name)
    for key in ("source", "message", "content", "observation", "action"):
        assert ours.get(key) == theirs.get(key), key
