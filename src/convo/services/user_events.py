"""What clients may send: a user message or an agent state change, and nothing else.

OpenHands dispatches any action a client sends (a client could inject a ``run`` action as
if the agent chose it); convo accepts only these two and refuses the rest before storing.
"""

from __future__ import annotations

from typing import Any

from convo.domain.conversation import AgentState
from convo.domain.events import (
    ActionType,
    Event,
    EventSource,
    change_agent_state_action,
    message_action,
)
from convo.errors import UnsupportedUserAction

TITLE_LENGTH = 30


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
        images = args.get("image_urls") or []
        return message_action(content, EventSource.USER, image_urls=[str(i) for i in images])
    if action == ActionType.CHANGE_AGENT_STATE:
        try:
            state = AgentState(str(args.get("agent_state")))
        except ValueError:
            raise UnsupportedUserAction(
                f"Unknown agent_state {args.get('agent_state')!r}"
            ) from None
        return change_agent_state_action(state, EventSource.USER)
    raise UnsupportedUserAction(
        f"Unsupported action {action!r}: clients may send 'message' or 'change_agent_state'"
    )


def title_from_text(text: str) -> str:
    """A conversation title from its first message: one line, at most 30 characters + '...'."""
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[:TITLE_LENGTH].rstrip() + "..."
