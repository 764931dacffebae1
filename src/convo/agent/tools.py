"""The agent's tools: OpenAI function specs with OpenHands' names, and tool call → action event.

A tool call the agent cannot use (bad JSON, unknown tool, missing or ill-typed argument)
raises :class:`InvalidToolCall`; the loop turns it into an ``error`` observation for the LLM.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from convo.domain.events import (
    Action,
    AgentFinishAction,
    AgentThinkAction,
    CmdRunAction,
    EventSource,
    FileEditAction,
    FileReadAction,
    MCPAction,
    ToolCallMetadata,
    now_iso,
)
from convo.llm.base import LLMResponse, ToolCall

EXECUTE_BASH = "execute_bash"
STR_REPLACE_EDITOR = "str_replace_editor"
THINK = "think"
FINISH = "finish"

SECURITY_RISK_UNKNOWN = -1  # OpenHands' ActionSecurityRisk.UNKNOWN
EDITOR_COMMANDS = ("view", "create", "str_replace", "insert", "undo_edit")
_EDITOR_REQUIRED = {
    "create": ("file_text",),
    "str_replace": ("old_str",),
    "insert": ("insert_line", "new_str"),
}


def _function(
    name: str, description: str, properties: dict[str, Any], required: list[str]
) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


_TOOL_SPECS: list[dict[str, Any]] = [
    _function(
        EXECUTE_BASH,
        "Run a bash command in the workspace's persistent shell (the working directory and "
        "environment carry over between calls). One command per call; chain with && or ;. "
        "For a long-running command, run it in the background with output sent to a file. "
        "If a command is still running, send is_input=true with text to type into it "
        "(e.g. C-c to interrupt it).",
        {
            "command": {"type": "string", "description": "The bash command to run."},
            "is_input": {
                "type": "string",
                "enum": ["true", "false"],
                "description": "true sends the command as input to the running "
                "process instead of starting a new command.",
            },
            "timeout": {
                "type": "number",
                "description": "Seconds to wait before interrupting the command.",
            },
        },
        ["command"],
    ),
    _function(
        STR_REPLACE_EDITOR,
        "View, create and edit files. view shows a file with line numbers (or lists a "
        "directory); create writes a new file; str_replace replaces one exact, unique "
        "occurrence of old_str with new_str; insert adds new_str after line insert_line; "
        "undo_edit reverts the last edit of a file. Paths are absolute.",
        {
            "command": {
                "type": "string",
                "enum": list(EDITOR_COMMANDS),
                "description": "The operation.",
            },
            "path": {"type": "string", "description": "Absolute path of the file or folder."},
            "file_text": {"type": "string", "description": "create: the file's content."},
            "old_str": {"type": "string", "description": "str_replace: the exact text to replace."},
            "new_str": {
                "type": "string",
                "description": "str_replace: the replacement; insert: the text.",
            },
            "insert_line": {
                "type": "integer",
                "description": "insert: the line after which to insert.",
            },
            "view_range": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "view: [start, end] lines; end -1 means the end.",
            },
        },
        ["command", "path"],
    ),
    _function(
        THINK,
        "Write down a thought: reasoning, a plan, or a hypothesis about a bug. It changes "
        "nothing in the workspace.",
        {"thought": {"type": "string", "description": "The thought."}},
        ["thought"],
    ),
    _function(
        FINISH,
        "Declare the task finished, with a message to the user summarising what was done.",
        {"message": {"type": "string", "description": "The final message to the user."}},
        ["message"],
    ),
]


def tool_specs() -> list[dict[str, Any]]:
    """The specs sent with every LLM call (a fresh copy)."""
    return copy.deepcopy(_TOOL_SPECS)


TOOL_NAMES = frozenset(spec["function"]["name"] for spec in _TOOL_SPECS)


class InvalidToolCall(ValueError):
    """The model's tool call cannot be carried out; the message is shown to the model."""


# --- tool call metadata -------------------------------------------------------------------
def assistant_message(response: LLMResponse) -> dict[str, Any]:
    """The response as an OpenAI assistant message (what the history replays)."""
    message: dict[str, Any] = {"role": "assistant", "content": response.content}
    if response.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in response.tool_calls
        ]
    return message


def tool_call_metadata(call: ToolCall, response: LLMResponse) -> ToolCallMetadata:
    return ToolCallMetadata(
        function_name=call.name,
        tool_call_id=call.id,
        model_response={  # the chat completion, in the OpenAI shape OpenHands stores
            "id": response.response_id,
            "created": response.created,
            "model": response.model,
            "object": "chat.completion",
            "choices": [
                {"finish_reason": "tool_calls", "index": 0, "message": assistant_message(response)}
            ],
            "usage": {
                "completion_tokens": response.usage.completion_tokens,
                "prompt_tokens": response.usage.prompt_tokens,
                "total_tokens": response.usage.prompt_tokens + response.usage.completion_tokens,
            },
        },
        total_calls_in_response=len(response.tool_calls),
    )


# --- arguments ----------------------------------------------------------------------------
def parse_arguments(call: ToolCall, extra_tools: frozenset[str] = frozenset()) -> dict[str, Any]:
    known = TOOL_NAMES | extra_tools
    if call.name not in known:
        raise InvalidToolCall(
            f"Unknown tool {call.name!r}. Available tools: {', '.join(sorted(known))}."
        )
    try:
        arguments = json.loads(call.arguments or "{}")
    except json.JSONDecodeError as exc:
        raise InvalidToolCall(
            f"The arguments of {call.name} are not valid JSON ({exc.msg}); send a JSON object."
        ) from None
    if not isinstance(arguments, dict):
        raise InvalidToolCall(f"The arguments of {call.name} must be a JSON object.")
    return arguments


def _require(arguments: dict[str, Any], tool: str, *names: str) -> None:
    missing = [n for n in names if arguments.get(n) is None]
    if missing:
        raise InvalidToolCall(f"Missing required argument(s) for {tool}: {', '.join(missing)}.")


def _string(arguments: dict[str, Any], name: str, tool: str) -> str | None:
    value = arguments.get(name)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float | bool):
        return str(value)
    raise InvalidToolCall(f"Argument {name} of {tool} must be a string.")


def _boolean(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _number(value: Any, name: str, tool: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidToolCall(f"Argument {name} of {tool} must be a number.") from None


def _integer(value: Any, name: str, tool: str) -> int | None:
    number = _number(value, name, tool)
    return None if number is None else int(number)


# --- tool call → action event ---------------------------------------------------------------
def _common(message: str, call: ToolCall, response: LLMResponse) -> dict[str, Any]:
    return {
        "timestamp": now_iso(),
        "source": EventSource.AGENT,
        "message": message,
        "tool_call_metadata": tool_call_metadata(call, response),
    }


def _run_action(
    arguments: dict[str, Any],
    call: ToolCall,
    response: LLMResponse,
    thought: str,
    default_timeout: float,
) -> CmdRunAction:
    _require(arguments, EXECUTE_BASH, "command")
    command = _string(arguments, "command", EXECUTE_BASH) or ""
    timeout = _number(arguments.get("timeout"), "timeout", EXECUTE_BASH)
    return CmdRunAction(
        **_common(f"Running command: {command}", call, response),
        command=command,
        is_input=_boolean(arguments.get("is_input", False)),
        thought=thought,
        blocking=timeout is not None,
        security_risk=SECURITY_RISK_UNKNOWN,
        timeout=timeout if timeout is not None else default_timeout,
    )


def _editor_action(
    arguments: dict[str, Any], call: ToolCall, response: LLMResponse, thought: str
) -> FileReadAction | FileEditAction:
    tool = STR_REPLACE_EDITOR
    _require(arguments, tool, "command", "path")
    command = _string(arguments, "command", tool)
    if command not in EDITOR_COMMANDS:
        raise InvalidToolCall(
            f"Unknown {tool} command {command!r}; use one of {', '.join(EDITOR_COMMANDS)}."
        )
    _require(arguments, f"{tool} {command}", *_EDITOR_REQUIRED.get(command, ()))
    path = _string(arguments, "path", tool) or ""
    view_range = arguments.get("view_range")
    if view_range is not None and (
        not isinstance(view_range, list)
        or len(view_range) != 2
        or not all(isinstance(v, int) for v in view_range)
    ):
        raise InvalidToolCall("Argument view_range must be a list of two integers.")
    if command == "view":
        return FileReadAction(
            **_common(f"Reading file: {path}", call, response),
            path=path,
            thought=thought,
            security_risk=SECURITY_RISK_UNKNOWN,
            impl_source="oh_aci",
            view_range=view_range,
        )
    return FileEditAction(
        **_common(f"Editing file ({command}): {path}", call, response),
        path=path,
        thought=thought,
        security_risk=SECURITY_RISK_UNKNOWN,
        impl_source="oh_aci",
        command=command,
        file_text=_string(arguments, "file_text", tool),
        old_str=_string(arguments, "old_str", tool),
        new_str=_string(arguments, "new_str", tool),
        insert_line=_integer(arguments.get("insert_line"), "insert_line", tool),
    )


def _mcp_action(
    arguments: dict[str, Any], call: ToolCall, response: LLMResponse, thought: str
) -> MCPAction:
    """OpenHands' MCPAction: ``call_tool_mcp`` with the tool's name and arguments."""
    message = (
        f"I am interacting with the MCP server with name:\n```\n{call.name}\n```\n"
        f"and arguments:\n```\n{arguments}\n```"
    )
    return MCPAction(
        **_common(message, call, response),
        name=call.name,
        arguments=arguments,
        thought=thought,
        security_risk=SECURITY_RISK_UNKNOWN,
    )


def action_from_tool_call(
    call: ToolCall,
    response: LLMResponse,
    *,
    thought: str = "",
    default_timeout: float = 120.0,
    mcp_tools: frozenset[str] = frozenset(),
) -> Action:
    """The (unstored) action event for one tool call; raises InvalidToolCall.
    ``mcp_tools``: the names of the loop's MCP tools (``agent.mcp_tools``)."""
    arguments = parse_arguments(call, mcp_tools)
    if call.name in mcp_tools:
        return _mcp_action(arguments, call, response, thought)
    if call.name == EXECUTE_BASH:
        return _run_action(arguments, call, response, thought, default_timeout)
    if call.name == STR_REPLACE_EDITOR:
        return _editor_action(arguments, call, response, thought)
    if call.name == THINK:
        _require(arguments, THINK, "thought")
        text = _string(arguments, "thought", THINK) or ""
        return AgentThinkAction(**_common(text, call, response), thought=text)
    _require(arguments, FINISH, "message")
    final = _string(arguments, "message", FINISH) or ""
    return AgentFinishAction(**_common(final, call, response), final_thought=final, thought=thought)
