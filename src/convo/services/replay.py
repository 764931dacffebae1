"""``replay_json`` at create: a recorded trajectory replayed, as OpenHands replays it.

The trajectory is a JSON list of events (what ``GET /api/conversations/{id}/trajectory``
returns under ``trajectory``, or OpenHands' exported file; the ``{"trajectory": [...]}``
object is accepted too). As in OpenHands:

- environment events are dropped; the first remaining event must be the user's message,
  which becomes the new conversation's first message;
- the agent's actions after it are carried out again, in order, in the new conversation's
  sandbox, each getting a fresh observation; the user's later events and all recorded
  observations are not replayed;
- once the recorded actions run out, the agent goes on with the model as usual.

convo replays them by answering the loop's first model calls with the recorded actions
(``run``, ``read``, ``edit``, ``think``, ``finish`` and the agent's messages) instead of
calling the model, so they go through the same tools, confirmation mode and events as the
agent's own. Actions convo has no tool for (browsing, IPython, MCP, delegation) are left out.
The replay lives in the loop's memory: a restart during it goes on with the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from convo.agent.tools import EDITOR_COMMANDS, EXECUTE_BASH, FINISH, STR_REPLACE_EDITOR, THINK
from convo.domain.events import (
    Action,
    AgentFinishAction,
    AgentThinkAction,
    CmdRunAction,
    Event,
    EventSource,
    FileEditAction,
    FileReadAction,
    MessageAction,
    confirmation_state,
)
from convo.llm.base import LLMResponse, ToolCall


class TrajectoryError(ValueError):
    """The replay_json cannot be replayed; the message says why."""


@dataclass(frozen=True)
class Trajectory:
    first_message: str
    image_urls: list[str] = field(default_factory=list)
    responses: list[LLMResponse] = field(default_factory=list)


def parse_trajectory(text: str) -> Trajectory:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TrajectoryError(f"replay_json is not JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("trajectory"), list):
        data = data["trajectory"]
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise TrajectoryError("replay_json must be a list of events")
    try:
        events = [Event.from_wire(item) for item in data]
    except ValueError as exc:
        raise TrajectoryError(f"replay_json holds an event convo cannot read: {exc}") from None
    events = [e for e in events if e.source != EventSource.ENVIRONMENT]
    first_event = events[0] if events else None
    if not isinstance(first_event, MessageAction) or first_event.source != EventSource.USER:
        raise TrajectoryError("A trajectory to replay must start with the user's message")
    responses = [
        response
        for number, event in enumerate(events[1:])
        if event.source == EventSource.AGENT
        and (response := _response(event, f"replay-{number}")) is not None
    ]
    return Trajectory(first_event.content, list(first_event.image_urls or []), responses)


def _call(call_id: str, name: str, arguments: dict[str, Any], thought: str) -> LLMResponse:
    given = {k: v for k, v in arguments.items() if v is not None}
    call = ToolCall(call_id, name, json.dumps(given))
    return LLMResponse(content=thought or None, tool_calls=[call], response_id=call_id)


def _action_call(event: Action, call_id: str) -> LLMResponse | None:
    """The tool call that makes the loop take this recorded action again, if it has one."""
    if isinstance(event, CmdRunAction):
        is_input = "true" if event.is_input else "false"
        arguments: dict[str, Any] = {"command": event.command, "is_input": is_input}
        return _call(call_id, EXECUTE_BASH, arguments, event.thought)
    if isinstance(event, FileReadAction):
        arguments = {"command": "view", "path": event.path, "view_range": event.view_range}
        return _call(call_id, STR_REPLACE_EDITOR, arguments, event.thought)
    if isinstance(event, FileEditAction):
        if event.command not in EDITOR_COMMANDS:
            return None  # OpenHands' LLM-based whole-file edits have no tool here
        arguments = {
            "command": event.command,
            "path": event.path,
            "file_text": event.file_text,
            "old_str": event.old_str,
            "new_str": event.new_str,
            "insert_line": event.insert_line,
        }
        return _call(call_id, STR_REPLACE_EDITOR, arguments, event.thought)
    if isinstance(event, AgentThinkAction):
        return _call(call_id, THINK, {"thought": event.thought}, "")
    if isinstance(event, AgentFinishAction):
        return _call(
            call_id, FINISH, {"message": event.final_thought or event.message}, event.thought
        )
    return None


def _response(event: Event, call_id: str) -> LLMResponse | None:
    """The model answer that makes the loop take this recorded action again."""
    if isinstance(event, MessageAction):
        content = event.content
        return LLMResponse(content=content, response_id=call_id) if content else None
    if not isinstance(event, Action):
        return None
    if confirmation_state(event) in ("awaiting_confirmation", "rejected"):
        return None  # the decided copy (or none, when rejected) is what was carried out
    return _action_call(event, call_id)
