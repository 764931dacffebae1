"""What clients may send: a message, an agent state change, and the user actions OpenHands
accepts from its clients: ``run`` (the web client's terminal), ``read``, ``edit``, ``write``,
``browse`` and ``browse_interactive``.

``run``, ``read``, ``edit`` and ``write`` are stored with ``source: "user"`` and carried out
by the conversation's loop in its sandbox (``convo.agent.controller``), under the same
confirmation mode as the agent's own (``run``, ``edit`` and ``write`` wait for it); the
agent is not asked to act on them. convo runs no browser: a ``browse`` is stored and
answered at once with an error observation saying so, as OpenHands answers it where no
browser is available (``browse_answer``). Anything else (``finish``, an agent-only kind, a
forged ``source``) is refused before it is stored.
"""

from __future__ import annotations

from typing import Any

from convo.agent.file_write import WRITE
from convo.domain.conversation import AgentState
from convo.domain.events import (
    ActionType,
    CmdRunAction,
    ErrorObservation,
    Event,
    EventSource,
    FileEditAction,
    FileWriteAction,
    change_agent_state_action,
    message_action,
    now_iso,
)
from convo.errors import UnsupportedUserAction

TITLE_LENGTH = 30
USER_EDIT_COMMANDS = ("create", "str_replace", "insert", "undo_edit")
USER_ACTIONS = (ActionType.RUN, ActionType.READ, ActionType.EDIT, WRITE)  # the loop runs them
BROWSE, BROWSE_INTERACTIVE = "browse", "browse_interactive"
BROWSE_ACTIONS = (BROWSE, BROWSE_INTERACTIVE)  # answered at once: no browser
_CONFIRMED_FIRST = (ActionType.RUN, ActionType.EDIT, WRITE)  # wait in confirmation mode
NO_BROWSER = (
    "Browsing is not available: this convo server runs no browser. Fetch pages with a "
    "command in the terminal instead (for example curl), where the sandbox may reach the "
    "network."
)


def parse_user_event(data: dict[str, Any]) -> Event:
    """The event a client's JSON asks for; raises UnsupportedUserAction otherwise."""
    action = data.get("action")
    args = data.get("args") or {}
    if not isinstance(args, dict):
        raise UnsupportedUserAction("'args' must be an object")
    if action == ActionType.MESSAGE:
        content = args.get("content")
        if not isinstance(content, str):
            raise UnsupportedUserAction("A message needs 'args.content' as a string")
        images = _urls(args, "image_urls")
        files = _urls(args, "file_urls")
        return message_action(content, EventSource.USER, image_urls=images, file_urls=files)
    if action == ActionType.CHANGE_AGENT_STATE:
        try:
            state = AgentState(str(args.get("agent_state")))
        except ValueError:
            raise UnsupportedUserAction(
                f"Unknown agent_state {args.get('agent_state')!r}"
            ) from None
        return change_agent_state_action(state, EventSource.USER)
    if action == ActionType.RUN:
        return _run(args)
    if action == ActionType.READ:
        path = _text(args, "path", required=True)
        return _user_action(ActionType.READ, f"Reading file: {path}", {"path": path})
    if action == ActionType.EDIT:
        return _edit(args)
    if action == WRITE:
        return _write(args)
    if action in BROWSE_ACTIONS:
        return _browse(str(action), args)
    raise UnsupportedUserAction(
        f"Unsupported action {action!r}: clients may send 'message', 'change_agent_state', "
        "'run', 'read', 'edit', 'write', 'browse' or 'browse_interactive'"
    )


def _urls(args: dict[str, Any], name: str) -> list[str]:
    """A message's ``image_urls`` or ``file_urls``: kept as sent (the web client sends data
    URLs for images and workspace paths of uploaded files)."""
    value = args.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UnsupportedUserAction(f"'args.{name}' must be a list of strings")
    return list(value)


def _text(args: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = args.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise UnsupportedUserAction(f"'args.{name}' must be a non-empty string")
    return value


def _user_action(kind: str, message: str, args: dict[str, Any]) -> Event:
    return Event.from_wire(
        {
            "timestamp": now_iso(),
            "source": EventSource.USER,
            "message": message,
            "action": kind,
            "args": {**args, "thought": "", "confirmation_state": "confirmed"},
        }
    )


def _run(args: dict[str, Any]) -> Event:
    command = _text(args, "command", required=True) or ""
    is_input = args.get("is_input", False)
    if not isinstance(is_input, bool):
        raise UnsupportedUserAction("'args.is_input' must be a boolean")
    return _user_action(
        ActionType.RUN,
        f"Running command: {command}",
        {
            "command": command,
            "is_input": is_input,
            "blocking": False,
            "is_static": False,
            "cwd": None,
            "hidden": bool(args.get("hidden", False)),
        },
    )


def _edit(args: dict[str, Any]) -> Event:
    path = _text(args, "path", required=True)
    command = args.get("command")
    if command not in USER_EDIT_COMMANDS:
        raise UnsupportedUserAction(
            f"'args.command' must be one of {', '.join(USER_EDIT_COMMANDS)} (read a file "
            "with the 'read' action)"
        )
    insert_line = args.get("insert_line")
    if insert_line is not None and (not isinstance(insert_line, int) or insert_line < 0):
        raise UnsupportedUserAction("'args.insert_line' must be a non-negative integer")
    return _user_action(
        ActionType.EDIT,
        f"Editing file ({command}): {path}",
        {
            "path": path,
            "command": command,
            "file_text": _text(args, "file_text"),
            "old_str": _text(args, "old_str"),
            "new_str": _text(args, "new_str"),
            "insert_line": insert_line,
            "content": "",
            "start": 1,
            "end": -1,
            "impl_source": "oh_aci",
        },
    )


def _line(args: dict[str, Any], name: str, default: int) -> int:
    value = args.get(name, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < -1:
        raise UnsupportedUserAction(f"'args.{name}' must be an integer line number")
    return value


def _write(args: dict[str, Any]) -> Event:
    path = _text(args, "path", required=True)
    content = args.get("content", "")
    if not isinstance(content, str):
        raise UnsupportedUserAction("'args.content' must be a string")
    start, end = _line(args, "start", 0), _line(args, "end", -1)
    if start < 0 or (end != -1 and end < start):
        raise UnsupportedUserAction("'args.start' and 'args.end' must be a line range")
    return _user_action(
        WRITE,
        f"Writing file: {path}",
        {"path": path, "content": content, "start": start, "end": end, "security_risk": None},
    )


def _browse(action: str, args: dict[str, Any]) -> Event:
    if action == BROWSE:
        url = _text(args, "url", required=True) or ""
        fields: dict[str, Any] = {"url": url, "return_axtree": False}
        message = f"Browsing URL: {url}"
    else:
        steps = _text(args, "browser_actions", required=True) or ""
        fields = {"browser_actions": steps, "browsergym_send_msg_to_user": "",
                  "return_axtree": False}  # fmt: skip
        message = f"Interactive browsing: {steps}"
    return Event.from_wire(
        {
            "timestamp": now_iso(),
            "source": EventSource.USER,
            "message": message,
            "action": action,
            "args": {**fields, "thought": "", "security_risk": None},
        }
    )


def browse_answer(action: Event) -> ErrorObservation:
    """The error observation answering a stored ``browse``: there is no browser."""
    return ErrorObservation(
        timestamp=now_iso(),
        source=EventSource.AGENT,
        message=NO_BROWSER,
        cause=action.id if action.id >= 0 else None,
        content=NO_BROWSER,
    )


def under_confirmation(event: Event, confirmation_mode: bool) -> Event:
    """A user's ``run``, ``edit`` or ``write`` waits for confirmation in confirmation mode,
    as the agent's do (``convo.agent.confirmation``)."""
    if not confirmation_mode or not isinstance(
        event, CmdRunAction | FileEditAction | FileWriteAction
    ):
        return event
    return event.model_copy(update={"confirmation_state": "awaiting_confirmation"})


def title_from_text(text: str) -> str:
    """A conversation title from its first message: one line, at most 30 characters + '...'."""
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[:TITLE_LENGTH].rstrip() + "..."
