"""Stuck detection: does the agent repeat itself since the last user message?

Patterns, as in OpenHands' controller/stuck.py:
- the same action with the same observation 4 times in a row;
- the same action ending in an error 3 times in a row;
- the same agent message 3 times in a row;
- two steps alternating A-B-A-B-A-B over the last 6 steps;
- 10 condensations in a row with no other agent action between them.

Actions compare by type and arguments (the free-text ``thought`` is ignored), observations by
type, content and exit code; ids, timestamps and metrics never count. A tool call that could
not become an action (bad arguments) compares by its tool name and raw arguments.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from convo.agent.history import since_last_user_message
from convo.agent.start_events import is_start_event
from convo.domain.events import (
    Action,
    CmdOutputObservation,
    CondensationAction,
    ErrorObservation,
    Event,
    EventSource,
    MessageAction,
    Observation,
    ToolCallMetadata,
)

REPEATED_PAIR = "the same action and observation repeated 4 times"
REPEATED_ERROR = "the same action failed with an error 3 times"
REPEATED_MESSAGE = "the same agent message repeated 3 times"
ALTERNATING = "alternating between two actions (A-B-A-B) over 6 steps"
CONDENSATION_LOOP = "10 condensations in a row without progress"


@dataclass(frozen=True)
class Step:
    action: str
    observation: str
    is_error: bool


def _action_key(action: Action) -> str:
    args = {k: v for k, v in action.args.items() if k != "thought"}
    return json.dumps({"action": action.action, "args": args}, sort_keys=True, default=str)


def _raw_call_key(metadata: ToolCallMetadata) -> str:
    """The key of a tool call that has no action event: its name and raw arguments."""
    response = metadata.model_response
    choices: list[Any] = response.get("choices") or [{}]
    message = choices[0].get("message") or {}
    for call in message.get("tool_calls") or []:
        if call.get("id") == metadata.tool_call_id:
            return json.dumps({"call": call.get("function")}, sort_keys=True, default=str)
    return json.dumps({"call": metadata.function_name})


def _observation_key(observation: Observation) -> str:
    exit_code = (
        observation.metadata.exit_code if isinstance(observation, CmdOutputObservation) else None
    )
    return json.dumps([observation.observation, observation.content, exit_code], default=str)


def steps_of(events: Sequence[Event]) -> list[Step]:
    """The (action, observation) steps among the events, in the order they finished."""
    actions = {e.id: e for e in events if isinstance(e, Action) and e.id >= 0}
    steps: list[Step] = []
    for event in events:
        metadata = event.tool_call_metadata
        if not isinstance(event, Observation) or metadata is None:
            continue
        action = actions.get(event.cause) if event.cause is not None else None
        key = _action_key(action) if action is not None else _raw_call_key(metadata)
        steps.append(Step(key, _observation_key(event), isinstance(event, ErrorObservation)))
    return steps


def _repeated_pair(steps: Sequence[Step], times: int = 4) -> bool:
    last = steps[-times:]
    return len(last) == times and len({(s.action, s.observation) for s in last}) == 1


def _repeated_error(steps: Sequence[Step], times: int = 3) -> bool:
    last = steps[-times:]
    return (
        len(last) == times and all(s.is_error for s in last) and len({s.action for s in last}) == 1
    )


def _repeated_message(events: Sequence[Event], times: int = 3) -> bool:
    messages = [
        e.content for e in events if isinstance(e, MessageAction) and e.source == EventSource.AGENT
    ][-times:]
    return len(messages) == times and len(set(messages)) == 1


def _alternating(steps: Sequence[Step], length: int = 6) -> bool:
    last = [(s.action, s.observation) for s in steps[-length:]]
    if len(last) < length:
        return False
    evens, odds = set(last[0::2]), set(last[1::2])
    return len(evens) == 1 and len(odds) == 1 and evens != odds


def _condensation_loop(events: Sequence[Event], times: int = 10) -> bool:
    actions = [e for e in events if isinstance(e, Action) and e.source == EventSource.AGENT]
    last = actions[-times:]
    return len(last) == times and all(isinstance(a, CondensationAction) for a in last)


def detect_stuck(events: Sequence[Event]) -> str | None:
    """The name of the pattern the agent is caught in since the last user message, or None."""
    recent = [e for e in since_last_user_message(events) if not is_start_event(e)]
    steps = steps_of(recent)
    if _repeated_pair(steps):
        return REPEATED_PAIR
    if _repeated_error(steps):
        return REPEATED_ERROR
    if _repeated_message(recent):
        return REPEATED_MESSAGE
    if _alternating(steps):
        return ALTERNATING
    if _condensation_loop(recent):
        return CONDENSATION_LOOP
    return None
