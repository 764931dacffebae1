"""Conversation metadata kept up to date from the events, without a write per event.

Every stored event moves a conversation's ``last_updated_at``; events that carry
``llm_metrics`` move its accumulated cost and token counts. Those fields are collected in
memory and written with one ``update_fields`` at most every ``interval`` seconds, at every
agent state change or finish, and when the loop stops (``flush``). A crash loses at most
``interval`` seconds of these figures, never an event: the events themselves are stored
one by one before anyone sees them, and the figures can be recomputed from them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from convo.domain.conversation import utcnow
from convo.domain.events import ActionType, Event, ObservationType
from convo.errors import RecordNotFound, StorageError
from convo.storage.base import ConversationStore

logger = logging.getLogger(__name__)


def fields_from_event(event: Event) -> dict[str, Any]:
    """The metadata fields one stored event changes."""
    fields: dict[str, Any] = {"last_updated_at": utcnow()}
    metrics = event.llm_metrics
    if metrics:
        usage = metrics.get("accumulated_token_usage") or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        fields.update(
            accumulated_cost=float(metrics.get("accumulated_cost") or 0.0),
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
        )
    return fields


def _flushes_now(event: Event) -> bool:
    return event.observation == ObservationType.AGENT_STATE_CHANGED or (
        event.action == ActionType.FINISH
    )


class MetadataSync:
    """Pending metadata fields per conversation, written in throttled batches."""

    def __init__(self, store: ConversationStore, interval_seconds: float) -> None:
        self._store = store
        self._interval = interval_seconds
        self._pending: dict[str, dict[str, Any]] = {}
        self._last_write: dict[str, float] = {}
        self.writes = 0  # for tests and benchmarks

    def pending(self, conversation_id: str) -> dict[str, Any]:
        return dict(self._pending.get(conversation_id, {}))

    async def on_event(self, conversation_id: str, event: Event) -> None:
        self._pending.setdefault(conversation_id, {}).update(fields_from_event(event))
        last = self._last_write.get(conversation_id)
        if _flushes_now(event) or last is None or time.monotonic() - last >= self._interval:
            await self.flush(conversation_id)

    async def flush(self, conversation_id: str, **extra: Any) -> None:
        """Write what is pending (plus ``extra`` fields) now; a no-op when nothing is."""
        fields = {**self._pending.pop(conversation_id, {}), **extra}
        self._last_write[conversation_id] = time.monotonic()
        if not fields:
            return
        self.writes += 1
        with contextlib.suppress(RecordNotFound):  # deleted meanwhile
            await self._store.update_fields(conversation_id, **fields)

    async def flush_all(self) -> None:
        for conversation_id in list(self._pending):
            try:
                await self.flush(conversation_id)
            except StorageError:
                logger.exception("could not write the metadata of %s", conversation_id)

    def forget(self, conversation_id: str) -> None:
        self._pending.pop(conversation_id, None)
        self._last_write.pop(conversation_id, None)
