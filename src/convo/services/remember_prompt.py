"""``remember-prompt``: from one event of a conversation, a prompt that asks an agent to
record what was learned there in the repository's microagent (the web client's "Add to
microagent" on an event; it starts a new conversation with the prompt).

As OpenHands builds it: the events around the chosen one (up to 4 before it and itself, up
to 5 after it; state changes, null events and hidden commands left out) are written out as
text and given to the user's model, which answers with the prompt inside
``<update_prompt>`` tags. A model that leaves the tags out has its whole answer used.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from convo.domain.events import (
    Action,
    ActionType,
    CmdOutputObservation,
    CmdRunAction,
    Event,
    Observation,
    ObservationType,
)
from convo.llm.base import LLMClient

BEFORE = 4  # events up to and including the chosen one: BEFORE + 1
AFTER = 5
MAX_EVENT_CHARS = 2000
_LEFT_OUT_ACTIONS = {ActionType.CHANGE_AGENT_STATE, "null"}
_LEFT_OUT_OBSERVATIONS = {ObservationType.AGENT_STATE_CHANGED, ObservationType.NULL}
_TAGGED = re.compile(r"<update_prompt>(.*?)</update_prompt>", re.DOTALL)

SYSTEM = """\
Your job is to write a prompt for another AI agent. That agent keeps a reference file of
what it has learned about working in a repository (a microagent), and will update the file
by following your prompt.

These events of a conversation with the agent may hold something worth keeping:
<events>
{events}
</events>

Decide what, if anything, from these events belongs in the reference file: facts about the
repository, commands that work or fail, conventions, pitfalls. Then write the prompt: say
what to add or change and in which part of the file, why (from the events), and exactly what
the new text should say. The agent must keep the file's structure and must not contradict
what is already in it unless the events show it is wrong.

Answer with the prompt only, inside <update_prompt></update_prompt> tags."""

ASK = "Write the prompt for updating the reference file from the events above."


def relevant(event: Event) -> bool:
    """Whether the event is one the agent's own history would hold."""
    if event.action in _LEFT_OUT_ACTIONS or event.observation in _LEFT_OUT_OBSERVATIONS:
        return False
    return not (isinstance(event, CmdRunAction | CmdOutputObservation) and event.hidden)


def around(events: Sequence[Event], event_id: int) -> list[Event]:
    """The relevant events nearest to ``event_id``: BEFORE + 1 up to it, AFTER after it."""
    kept = [e for e in events if relevant(e)]
    before = [e for e in kept if e.id <= event_id][-(BEFORE + 1) :]
    after = [e for e in kept if e.id > event_id][:AFTER]
    return before + after


def describe(event: Event) -> str:
    """One event as text for the model."""
    if isinstance(event, Action):
        args = {k: v for k, v in event.args.items() if v not in (None, "", [], {})}
        body = ", ".join(f"{k}={v!r}" for k, v in args.items())
        text = f"[{event.id}] {event.source} {event.action}: {body}"
    else:
        content = event.content if isinstance(event, Observation) else ""
        text = f"[{event.id}] {event.source} {event.observation} result: {content}"
    return text if len(text) <= MAX_EVENT_CHARS else text[:MAX_EVENT_CHARS] + " [...]"


def messages(events: Sequence[Event]) -> list[dict[str, Any]]:
    listing = "\n".join(describe(e) for e in events) or "(no events)"
    return [
        {"role": "system", "content": SYSTEM.format(events=listing)},
        {"role": "user", "content": ASK},
    ]


def extract(answer: str) -> str:
    """The prompt inside the model's ``<update_prompt>`` tags (its whole answer without)."""
    tagged = _TAGGED.search(answer)
    return (tagged.group(1) if tagged else answer).strip()


async def write_prompt(events: Sequence[Event], event_id: int, llm: LLMClient) -> str:
    """The prompt for the events around ``event_id`` (LLMError when the model fails)."""
    response = await llm.complete(messages(around(events, event_id)), [])
    return extract(response.content or "")
