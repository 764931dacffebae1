"""Condensation: keeping a long task's LLM context within bounds.

The stored event log keeps everything. What the LLM sees is a *view* of it: the events
forgotten by ``condensation`` actions are left out, and the latest summary stands right
after the first user message (``convo.agent.history`` renders it as a user message).

Before each LLM call the condenser checks the view. When the LLM would see more than
``max_events`` events, or the request is estimated at more than ``token_ratio`` of the
model's context window, the events between the first user message and the most recent
half are summarised by the LLM into one ``condensation`` action event, in OpenHands' shape::

    {"action": "condensation", "args": {"forgotten_event_ids": null,
     "forgotten_events_start_id": 5, "forgotten_events_end_id": 80,
     "summary": "...", "summary_offset": 1}}

Each summary is written from the previous one plus the newly forgotten events, so only the
latest is shown. A request the provider refuses as too long is condensed and retried once
(``is_context_overflow``).

Token counts are an estimate (JSON characters / 4): litellm's ``token_counter`` can fetch a
tokenizer from the network for some models, and this check must never do I/O. The context
window comes from configuration or, when the estimate is large enough to matter, from a
lookup the service layer provides (litellm's local model list), done once in a thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from convo.agent.history import build_messages
from convo.agent.start_events import is_start_event
from convo.domain.events import (
    AgentStateChangedObservation,
    CondensationAction,
    Event,
    EventSource,
    MessageAction,
    Observation,
    now_iso,
)
from convo.llm.base import LLMClient, LLMResponse

logger = logging.getLogger(__name__)

_MIN_TOKENS_FOR_LOOKUP = 8_000  # below this, every model's window is large enough
_MAX_EVENT_CHARS = 4_000  # of one forgotten event, in the summariser's input
_OVERFLOW = re.compile(
    r"context.?window|context.?length|maximum context|too many tokens|prompt is too long",
    re.IGNORECASE,
)

_SUMMARY_SYSTEM = """\
You keep the memory of a software agent working on a user's task. Its earlier events are \
about to be removed from its context; write the summary it will rely on instead. Keep: the \
user's goals and requirements; what has been done (files created or changed, commands and \
their important results); the current state (what works, what fails, open errors); facts \
it will need again (paths, names, versions, decisions); and what remains to do. Be concise \
and concrete. Reply with the summary only."""


CondensationSink = Callable[[Event, LLMResponse], Awaitable[None]]
"""Stores a condensation action (appending it to the history) and accounts for its LLM call."""


@dataclass(frozen=True)
class CondenserConfig:
    max_events: int | None = 120  # events the LLM may see before older ones are summarised
    max_input_tokens: int | None = None  # the model's context window, when configured
    context_window: Callable[[], int | None] | None = None  # looks the window up (slow)
    token_ratio: float = 0.75


def is_context_overflow(error: Exception) -> bool:
    """Whether an LLM error says the request was too long for the model."""
    return bool(_OVERFLOW.search(str(error)))


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    return len(json.dumps(messages, default=str)) // 4


# --- the view --------------------------------------------------------------------------------
def _forgotten(event: CondensationAction) -> set[int]:
    ids = set(event.forgotten_event_ids or [])
    start, end = event.forgotten_events_start_id, event.forgotten_events_end_id
    if start is not None and end is not None:
        ids.update(range(start, end + 1))
    return ids


def _is_user_message(event: Event) -> bool:
    return isinstance(event, MessageAction) and event.source == EventSource.USER


def view(events: Sequence[Event]) -> list[Event]:
    """The events the LLM sees, with the latest summary after the first user message."""
    forgotten: set[int] = set()
    latest: CondensationAction | None = None
    for event in events:
        if isinstance(event, CondensationAction):
            forgotten |= _forgotten(event)
            latest = event
    kept = [
        e
        for e in events
        if e.id not in forgotten
        and not isinstance(e, CondensationAction)
        and not is_start_event(e)  # shown to clients; the model has them in its prompt
    ]
    if latest is not None and latest.summary:
        kept.insert(_head_length(kept), latest)
    return kept


def _head_length(events: Sequence[Event]) -> int:
    """Events up to and including the first user message (kept by every condensation)."""
    for index, event in enumerate(events):
        if _is_user_message(event):
            return index + 1
    return 0


def _counts(event: Event) -> bool:
    return not isinstance(event, AgentStateChangedObservation)


def condensation_action(forget: Sequence[Event], summary: str, offset: int) -> CondensationAction:
    return CondensationAction(
        timestamp=now_iso(),
        source=EventSource.AGENT,
        message=f"Summarised {len(forget)} earlier events.",
        forgotten_events_start_id=forget[0].id,
        forgotten_events_end_id=forget[-1].id,
        summary=summary,
        summary_offset=offset,
    )


def _render(events: Sequence[Event]) -> str:
    """Forgotten events as plain text for the summariser."""
    lines: list[str] = []
    for message in build_messages("", events)[1:]:
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        text = str(content or "")
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            text += f"\n[calls {function.get('name')}({function.get('arguments')})]"
        if len(text) > _MAX_EVENT_CHARS:
            text = text[:_MAX_EVENT_CHARS] + " [...]"
        lines.append(f"{message['role']}: {text.strip()}")
    return "\n\n".join(lines)


# --- the condenser ---------------------------------------------------------------------------
class Condenser:
    """Decides when to condense, and asks the LLM for the summary."""

    def __init__(self, config: CondenserConfig) -> None:
        self.config = config
        self._window: int | None = config.max_input_tokens
        self._looked_up = config.max_input_tokens is not None or config.context_window is None

    async def context_window(self) -> int:
        """The model's context window (looked up once, in a thread), 0 when unknown."""
        return await self._context_window() or 0

    async def _context_window(self) -> int | None:
        if not self._looked_up and self.config.context_window is not None:
            self._looked_up = True
            try:
                self._window = await asyncio.to_thread(self.config.context_window)
            except Exception:
                logger.warning("could not look up the model's context window", exc_info=True)
        return self._window

    async def too_large(self, events: Sequence[Event], messages: list[dict[str, Any]]) -> bool:
        limit = self.config.max_events
        if limit is not None and sum(1 for e in events if _counts(e)) > limit:
            return True
        tokens = estimate_tokens(messages)
        if tokens < _MIN_TOKENS_FOR_LOOKUP and self.config.max_input_tokens is None:
            return False
        window = await self._context_window()
        return window is not None and tokens > window * self.config.token_ratio

    def split(self, events: Sequence[Event]) -> tuple[int, list[Event]] | None:
        """(summary offset, events to forget), or None when nothing can be forgotten."""
        head = _head_length(events)
        rest = [e for e in events[head:] if not isinstance(e, CondensationAction)]
        visible = [e for e in rest if _counts(e)]
        keep = len(visible) // 2
        if self.config.max_events is not None:
            keep = min(keep, self.config.max_events // 2)
        cut = len(rest)
        kept = 0
        while cut > 0 and kept < keep:  # walk back until ``keep`` visible events are kept
            cut -= 1
            kept += _counts(rest[cut])
        # start the kept part at an action, not at an observation cut from its action
        while cut > 0 and isinstance(rest[cut], Observation) and rest[cut].tool_call_metadata:
            cut -= 1
        forget = rest[:cut]
        return (head, forget) if forget else None

    async def condense(
        self, llm: LLMClient, events: Sequence[Event]
    ) -> tuple[Event, LLMResponse] | None:
        """The condensation action for the view ``events`` (not yet stored), or None."""
        split = self.split(events)
        if split is None:
            return None
        offset, forget = split
        previous = next((e for e in events if isinstance(e, CondensationAction)), None)
        previous_summary = (previous.summary or "") if previous else ""
        prompt = (
            f"<PREVIOUS_SUMMARY>\n{previous_summary or '(none)'}\n</PREVIOUS_SUMMARY>\n\n"
            f"<EVENTS>\n{_render(forget)}\n</EVENTS>\n\n"
            "Write the updated summary of everything above."
        )
        response = await llm.complete(
            [{"role": "system", "content": _SUMMARY_SYSTEM}, {"role": "user", "content": prompt}],
            [],
        )
        summary = (response.content or "").strip() or previous_summary or "(no summary)"
        return condensation_action(forget, summary, offset), response

    async def messages(
        self,
        llm: LLMClient,
        system_prompt: str,
        history: list[Event],
        store: CondensationSink,
        *,
        force: bool = False,
        vision: bool = True,
    ) -> list[dict[str, Any]]:
        """The LLM messages for ``history`` (the live list ``store`` appends to), condensed
        first when they are too large or ``force`` is set."""
        events = view(history)
        messages = build_messages(system_prompt, events, vision=vision)
        if force or await self.too_large(events, messages):
            condensed = await self.condense(llm, events)
            if condensed is not None:
                await store(*condensed)
                messages = build_messages(system_prompt, view(history), vision=vision)
        return messages
