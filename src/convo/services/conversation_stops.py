"""Stopping conversations' loops: a user's stop, an interruption, eviction over the limit.

A stop cancels the loop and waits (at most ``stop_timeout_seconds``) until it has ended and
its sandbox is closed, and says whether it did (``StopResult``). Only the conversation's own
lock is held, and only to register the stop: concurrent stops of one conversation share one
outcome, and a start waits for a stop in progress (``_stopped``) before it begins.

A user's stop is stored first (``desired_running`` false, so that nothing resumes it), then,
once the loop has ended, as a STOPPED event. During a storage outage both wait in memory
(``stop_unstored``) and are stored by the supervisor once storage is back
(``store_pending_stops``); until then nothing resumes the conversation.

Starting a conversation past the user's limit (``max_concurrent_conversations``) stops the
user's least recently active loops, each under its own lock, with an error event saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from convo.config import Settings
from convo.domain.conversation import AgentState, utcnow
from convo.domain.events import EventSource, agent_state_changed, error_observation
from convo.errors import RecordNotFound, StorageFull, StorageUnavailable
from convo.services.conversation_records import ConversationRecords, check_id
from convo.services.event_log import EventLog, status_update
from convo.services.keyed_lock import KeyedLock
from convo.services.metadata_sync import MetadataSync
from convo.services.running import RunningConversation
from convo.services.stopping import StopResult, cancel_and_wait
from convo.services.storage_health import StorageHealth
from convo.storage.base import Storage

logger = logging.getLogger(__name__)

TOO_MANY = "AGENT_ERROR$TOO_MANY_CONVERSATIONS"


class StoppableConversations(ConversationRecords):
    """The running loops of this process and how they are stopped; the
    ``ConversationManager`` adds how they are started."""

    def __init__(self, settings: Settings, storage: Storage, log: EventLog) -> None:
        super().__init__(settings, storage, log)
        self._running: dict[str, RunningConversation] = {}
        # conversation id -> resolved when its stop (including the STOPPED event) is done
        self._stopping: dict[str, asyncio.Future[StopResult]] = {}
        self._locks = KeyedLock()  # per conversation: its starts and stops, one at a time
        # conversation id -> whether its STOPPED event is missing too: stops a storage
        # outage kept from being stored
        self._unstored_stops: dict[str, bool] = {}
        self.metadata_sync = MetadataSync(storage.conversations, settings.metadata_flush_seconds)
        self.health = StorageHealth()

    # --- queries -----------------------------------------------------------------------
    def agent_state(self, conversation_id: str) -> AgentState | None:
        running = self._running.get(conversation_id)
        return running.agent_state if running is not None else None

    def running_ids(self, user_id: str | None = None) -> list[str]:
        return [c.conversation_id for c in self._running.values() if c.user_id == user_id]

    def running_conversations(self) -> list[RunningConversation]:
        return list(self._running.values())

    def is_running(self, conversation_id: str) -> bool:
        return conversation_id in self._running

    def num_connections(self, conversation_id: str) -> int:
        return self._log.bus.subscriber_count(conversation_id)

    async def _stopped(self, conversation_id: str) -> None:
        """Return once no stop of this conversation is in progress."""
        while (pending := self._stopping.get(conversation_id)) is not None:
            await asyncio.shield(pending)

    async def stop(self, conversation_id: str) -> StopResult:
        """Stop the loop and say whether it has ended (or was not running)."""
        check_id(conversation_id)
        return await self._stop(
            conversation_id,
            record_stop=True,
            wait_seconds=self._settings.stop_timeout_seconds,
        )

    async def interrupt(self, conversation_id: str) -> StopResult:
        """End the loop without recording a stop: it should run, and is resumed by the
        supervisor (a loop that stopped making progress)."""
        return await self._stop(
            conversation_id, record_stop=False, wait_seconds=self._settings.stop_timeout_seconds
        )

    async def _stop(
        self, conversation_id: str, *, record_stop: bool, wait_seconds: float
    ) -> StopResult:
        """Cancel the loop and wait (at most ``wait_seconds``) until it has ended and its
        sandbox is closed. ``record_stop``: a user's stop, stored first (so that nothing
        resumes it) and, once the loop has ended, as a STOPPED event."""
        async with self._locks.hold(conversation_id):
            if record_stop:  # under the lock: ordered with a start storing that it runs
                await self._store_stop(conversation_id)
            pending = self._stopping.get(conversation_id)
            running = self._running.get(conversation_id)
            if pending is None:
                if running is None or running.task is None:
                    return StopResult.NOT_RUNNING
                done: asyncio.Future[StopResult] = asyncio.get_running_loop().create_future()
                self._stopping[conversation_id] = done
        if pending is not None:  # another stop is under way: share its end
            return await asyncio.shield(pending)
        assert running is not None
        result = StopResult.STILL_RUNNING
        try:
            if await cancel_and_wait(running, wait_seconds):
                result = StopResult.STOPPED
                if record_stop:
                    await self._store_stopped_event(conversation_id)
        finally:
            del self._stopping[conversation_id]
            done.set_result(result)
        return result

    # --- stops during a storage outage ---------------------------------------------------
    async def _store_stop(self, conversation_id: str) -> None:
        """Store that the user wants it stopped. During a storage outage the stop goes on
        and is stored later (``store_pending_stops``); until then nothing resumes it."""
        try:
            with contextlib.suppress(RecordNotFound):
                await self._storage.conversations.update_fields(
                    conversation_id, desired_running=False
                )
        except (StorageUnavailable, StorageFull) as exc:
            self.health.failed(exc)
            self._unstored_stops.setdefault(conversation_id, False)

    async def _store_stopped_event(self, conversation_id: str) -> None:
        try:
            with contextlib.suppress(RecordNotFound):
                await self._log.append(conversation_id, agent_state_changed(AgentState.STOPPED))
                await self.metadata_sync.flush(conversation_id, last_updated_at=utcnow())
        except (StorageUnavailable, StorageFull) as exc:
            self.health.failed(exc)
            self._unstored_stops[conversation_id] = True

    def stop_unstored(self, conversation_id: str) -> bool:
        """A user's stop of it waits to be stored (the supervisor resumes nothing of it)."""
        return conversation_id in self._unstored_stops

    async def store_pending_stops(self) -> None:
        """Store the stops made during a storage outage; raises StorageError while it lasts."""
        for conversation_id, with_event in list(self._unstored_stops.items()):
            with contextlib.suppress(RecordNotFound):
                await self._storage.conversations.update_fields(
                    conversation_id, desired_running=False
                )
                if with_event:
                    await self._log.append(conversation_id, agent_state_changed(AgentState.STOPPED))
            del self._unstored_stops[conversation_id]

    async def _evict_over_limit(self, started: RunningConversation) -> None:
        """Stop the user's least recently active loops (not the one just started) while more
        than the limit run. No lock is held: each victim is stopped under its own."""
        limit = self._settings.max_concurrent_conversations
        mine = [
            c
            for c in self._running.values()
            if c.user_id == started.user_id and c.conversation_id not in self._stopping
        ]
        excess = len(mine) - limit
        if excess <= 0:
            return
        others = sorted((c for c in mine if c is not started), key=lambda c: c.last_active)
        for victim in others[:excess]:
            await self._evict(victim.conversation_id)

    def _too_many_message(self) -> str:
        return (
            "This conversation was stopped because too many conversations were running "
            f"(limit {self._settings.max_concurrent_conversations}). Start it again to resume."
        )

    async def _evict(self, conversation_id: str) -> None:
        """Stop this process's loop of it as over the limit, with an event saying why."""
        if conversation_id in self._stopping or conversation_id not in self._running:
            return  # another start's eviction took it meanwhile
        logger.info("evicting %s: over the limit", conversation_id)
        message = self._too_many_message()
        await self._log.append(
            conversation_id,
            error_observation(message, error_id=TOO_MANY, source=EventSource.ENVIRONMENT),
        )
        await self._log.publish_status(conversation_id, status_update("error", TOO_MANY, message))
        await self._stop(
            conversation_id, record_stop=True, wait_seconds=self._settings.stop_timeout_seconds
        )
