"""Confirmation mode: shell commands, file edits and MCP tool calls wait for the user.

With ``AgentConfig.confirmation_mode`` on, a ``run``, ``edit`` or ``call_tool_mcp`` action is
stored with ``args.confirmation_state = "awaiting_confirmation"`` and not executed; the agent
goes to ``awaiting_user_confirmation`` (other tool calls of the same LLM response wait behind
it).
The user answers with a ``change_agent_state`` action (``POST /events`` or the socket):

- ``user_confirmed``: the action is stored again with ``confirmation_state: "confirmed"``
  (as OpenHands re-adds the pending action), executed, and the agent goes on running;
- ``user_rejected``: the action is stored again as ``"rejected"`` and answered with a
  ``user_rejected`` observation, so the LLM learns of it at its next call; the agent waits
  for the user's next message (``awaiting_user_input``). A new user message while an action
  waits rejects it the same way, then the agent runs on the message.

The decided copy carries the same ``tool_call_metadata``, so the LLM history pairs the
observation with the model's tool call; the awaiting original is never executed (restart
recovery skips it) and a restarted loop finds it again with ``pending_action``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from convo.domain.events import (
    CONFIRMABLE,
    CmdRunAction,
    Event,
    EventSource,
    FileEditAction,
    MCPAction,
    MessageAction,
    UserRejectObservation,
    confirmation_state,
    now_iso,
)

AWAITING = "awaiting_confirmation"
CONFIRMED = "confirmed"
REJECTED = "rejected"
_GUARDED_ACTIONS = (CmdRunAction, FileEditAction, MCPAction)


def needs_confirmation(action: Event, confirmation_mode: bool) -> bool:
    return confirmation_mode and isinstance(action, _GUARDED_ACTIONS)


def with_state(action: Event, state: str) -> Event:
    """A copy of the action (not stored: no id) in confirmation state ``state``."""
    update: dict[str, Any] = {"id": -1, "timestamp": now_iso(), "confirmation_state": state}
    if state != AWAITING:
        update["thought"] = ""  # the thought was shown with the awaiting action already
    if not isinstance(action, CONFIRMABLE):
        raise TypeError(f"A {action.action} action has no confirmation state")
    return action.model_copy(update=update)


def rejection(action: Event, reason: str) -> UserRejectObservation:
    """The ``user_rejected`` observation answering a rejected action."""
    content = f"Action has been rejected by the user! Reason: {reason}"
    return UserRejectObservation(
        timestamp=now_iso(),
        source=EventSource.USER,
        message=content,
        cause=action.id if action.id >= 0 else None,
        content=content,
        tool_call_metadata=action.tool_call_metadata,
    )


def _call_id(event: Event) -> str | None:
    metadata = event.tool_call_metadata
    return metadata.tool_call_id or None if metadata is not None else None


def pending_action(history: Sequence[Event]) -> Event | None:
    """The last action still awaiting confirmation (no decided copy after it), if any."""
    decided: set[str] = set()
    for event in reversed(history):
        if event.source != EventSource.AGENT or not isinstance(event, _GUARDED_ACTIONS):
            continue
        state, call_id = confirmation_state(event), _call_id(event)
        if state in (CONFIRMED, REJECTED) and call_id:
            decided.add(call_id)
        elif state == AWAITING:
            return None if call_id in decided else event
    return None


def waiting_on_restart(history: Sequence[Event]) -> tuple[Event | None, bool]:
    """For a restarted loop: the action awaiting confirmation, and whether a user message
    came after it (which then rejects it)."""
    pending = pending_action(history)
    if pending is None:
        return None, False
    newer = any(
        isinstance(e, MessageAction) and e.source == EventSource.USER and e.id > pending.id
        for e in history
    )
    return pending, newer
