"""Conversation metadata kept up to date from the events, without a write per event.

Every stored event moves a conversation's ``last_updated_at``; events that carry
``llm_metrics`` move its accumulated cost and token counts. Those fields are collected in
memory (``note``, no I/O: a loop's append never waits for a metadata write) and written by
one named task with one ``update_fields`` per conversation at most every ``interval``
seconds, soon after every agent state change or finish, and when the loop stops (``flush``).
A crash loses at most ``interval`` seconds of these figures, never an event: the events
themselves are stored one by one before anyone sees them, and the figures can be recomputed
from them. A write that fails keeps its fields pending for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from convo.aio import cancel_and_await
from convo.domain.conversation import utcnow
from convo.domain.events import AgentFinishAction, AgentStateChangedObservation, Event
from convo.errors import (
    LeaseLost,
    RecordNotFound,
    StorageError,
    StorageFull,
    StorageUnavailable,
)
from convo.storage.base import ConversationStore

logger = logging.getLogger(__name__)


def fields_from_event(event: Event) -> dict[str, Any]:
    """The metadata fields one stored event changes."""
    fields: dict[str, Any] = {"last_updated_at": utcnow()}
    metrics = event.llm_metrics
    if metrics is not None:
        prompt = metrics.accumulated_token_usage.prompt_tokens
        completion = metrics.accumulated_token_usage.completion_tokens
        fields.update(
            accumulated_cost=metrics.accumulated_cost,
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
        )
    return fields


def _flushes_now(event: Event) -> bool:
    return isinstance(event, AgentStateChangedObservation | AgentFinishAction)


class MetadataSync:
    """Pending metadata fields per conversation, written in throttled batches."""

    def __init__(self, store: ConversationStore, interval_seconds: float) -> None:
        self._store = store
        self._interval = interval_seconds
        self._pending: dict[str, dict[str, Any]] = {}
        self._last_write: dict[str, float] = {}
        self._due: set[str] = set()  # to be written as soon as the writer gets to it
        self._tokens: dict[str, int] = {}  # conversation id -> its loop's lease token
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.writes = 0  # for tests and benchmarks

    def own(self, conversation_id: str, token: int | None) -> None:
        """Write its fields under this lease token (cluster mode): refused once stale."""
        if token is not None:
            self._tokens[conversation_id] = token

    def pending(self, conversation_id: str) -> dict[str, Any]:
        return dict(self._pending.get(conversation_id, {}))

    def note(self, conversation_id: str, event: Event) -> None:
        """Take in a stored event's fields; the writer task writes them when due."""
        self._pending.setdefault(conversation_id, {}).update(fields_from_event(event))
        last = self._last_write.get(conversation_id)
        if _flushes_now(event) or last is None or time.monotonic() - last >= self._interval:
            self._due.add(conversation_id)
            self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._write_forever(), name="conversations:metadata")

    async def aclose(self) -> None:
        """Stop the writer task, then write everything still pending."""
        task, self._task = self._task, None
        await cancel_and_await(task)
        await self.flush_all()

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush_due()

    async def flush_due(self) -> None:
        """Write the conversations whose fields are due."""
        due, self._due = self._due, set()
        for conversation_id in due:
            try:
                await self.flush(conversation_id)
            except (StorageUnavailable, StorageFull) as exc:  # an outage: logged where it
                logger.debug("metadata of %s waits: %s", conversation_id, exc)  # is noticed
                self._due.update(due)  # written at the next wake
                break
            except StorageError as exc:
                logger.warning("could not write the metadata of %s: %s", conversation_id, exc)

    async def flush(self, conversation_id: str, **extra: Any) -> None:
        """Write what is pending (plus ``extra`` fields) now; a no-op when nothing is."""
        pending = self._pending.pop(conversation_id, {})
        fields = {**pending, **extra}
        self._last_write[conversation_id] = time.monotonic()
        if not fields:
            return
        self.writes += 1
        try:
            with contextlib.suppress(RecordNotFound):  # deleted meanwhile
                await self._store.update_fields(
                    conversation_id, token=self._tokens.get(conversation_id), **fields
                )
        except LeaseLost:  # another node runs it now and writes its own figures
            self.forget(conversation_id)
        except BaseException:
            # kept for the next write, under anything newer noted meanwhile
            self._pending[conversation_id] = {**pending, **self._pending.get(conversation_id, {})}
            raise

    async def flush_all(self) -> None:
        for conversation_id in list(self._pending):
            try:
                await self.flush(conversation_id)
            except (StorageUnavailable, StorageFull):
                raise  # an outage: the caller notes it (once), the next round tries again
            except StorageError:
                logger.exception("could not write the metadata of %s", conversation_id)

    def forget(self, conversation_id: str) -> None:
        self._pending.pop(conversation_id, None)
        self._tokens.pop(conversation_id, None)
        self._last_write.pop(conversation_id, None)
        self._due.discard(conversation_id)
