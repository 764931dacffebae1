"""A running conversation's writes, carried through storage outages.

A loop whose write fails because the database is unreachable, timed out or its disk is full
(``StorageUnavailable``, ``StorageFull``) tries the same write again, with exponential
backoff, for up to ``storage_retry_seconds``; then it carries on where it was. An append
whose outcome was lost (the connection dropped around the commit) is looked up before it is
tried again, so that it is never stored twice.

While the disk is full every loop pauses before its next write, so that none of them takes
the space freed by the released ``DiskReserve``: that space lets each conversation store one
error event telling its user that the disk is full. Writes go on once the disk has room.

Past the retry limit the write raises: the loop ends, its conversation stays one that should
run, and the supervisor resumes it once storage is back. The error event saying what
happened is kept here until then (``take_notice``) and stored by the resumed loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from convo.domain.events import Event, EventSource, error_observation, now_iso
from convo.errors import StorageError, StorageFull, StorageUnavailable
from convo.services.event_log import EventLog, status_update
from convo.services.storage_health import DiskReserve, StorageHealth

logger = logging.getLogger(__name__)

DISK_FULL = "STATUS$ERROR_DISK_FULL"
STORAGE_LOST = "STATUS$ERROR_STORAGE"
_T = TypeVar("_T")
_FIRST_DELAY = 0.2


@dataclass(frozen=True)
class RetryPolicy:
    seconds: float = 30.0  # how long one write is tried
    max_delay: float = 5.0  # longest pause between two tries


class DurableWriter:
    """Retries for the writes of every running loop; shares one ``StorageHealth``."""

    def __init__(
        self, log: EventLog, health: StorageHealth, reserve: DiskReserve, policy: RetryPolicy
    ) -> None:
        self._log = log
        self.health = health
        self.reserve = reserve
        self._policy = policy
        self._noticed: set[str] = set()  # conversations told of the current full disk
        self._notices: dict[str, str] = {}  # conversation id -> event to store on resume

    # --- appends -------------------------------------------------------------------------
    async def append(
        self,
        conversation_id: str,
        event: Event,
        secrets: Iterable[str],
        *,
        token: int | None = None,
    ) -> Event:
        """Store and publish ``event``, retrying through an outage; raises the last
        StorageError once the retry limit is passed. ``token``: the loop's lease token
        (cluster mode): LeaseLost, never retried, once another node holds the lease."""
        if not event.timestamp:  # fixed now, so that a retry can recognise a stored copy
            event = event.model_copy(update={"timestamp": now_iso()})
        secrets = tuple(secrets)
        uncertain = False  # an attempt may have committed without our knowing

        async def attempt() -> Event:
            nonlocal uncertain
            if uncertain:
                found = await self._log.find_stored(conversation_id, event, secrets)
                if found is not None:
                    await self._log.publish_event(conversation_id, found)
                    return found
            uncertain = True
            stored = await self._log.append(conversation_id, event, secrets, token=token)
            uncertain = False
            return stored

        return await self._retry(conversation_id, attempt, secrets)

    async def write(self, conversation_id: str, operation: Callable[[], Awaitable[_T]]) -> _T:
        """Run an idempotent write (a status or metadata update), retrying through an outage."""
        return await self._retry(conversation_id, operation, ())

    async def _retry(
        self,
        conversation_id: str,
        operation: Callable[[], Awaitable[_T]],
        secrets: tuple[str, ...],
    ) -> _T:
        deadline = time.monotonic() + self._policy.seconds
        delay = _FIRST_DELAY
        while True:
            if self.health.full and not self.reserve.has_room():
                failure: StorageError = StorageFull(self.health.reason or "The disk is full")
            else:
                try:
                    result = await operation()
                except (StorageUnavailable, StorageFull) as exc:
                    failure = exc
                else:
                    self._recovered()
                    return result
            self.health.failed(failure)
            if isinstance(failure, StorageFull):
                await self.tell_disk_full(conversation_id, secrets=secrets)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise failure
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, self._policy.max_delay)

    def _recovered(self) -> None:
        """A write succeeded. On a full disk that ends nothing while the disk has no room:
        the write used the space of the released reserve."""
        if self.health.full:
            if not self.reserve.has_room():
                return
            self._noticed.clear()
        self.health.recovered()

    # --- a full disk ---------------------------------------------------------------------
    async def tell_disk_full(
        self, conversation_id: str, *, secrets: tuple[str, ...] = (), resuming: bool = False
    ) -> None:
        """Once per conversation and full disk: store an error event saying so, in the
        space the released reserve freed. ``resuming``: the conversation was to be resumed
        (after a restart or an outage) and is not, for now."""
        if conversation_id in self._noticed:
            return
        await self.reserve.release()
        state = "could not be resumed" if resuming else "is paused"
        text = (
            "The disk under convo's data is full: this conversation cannot store its "
            f"progress and {state}. It carries on by itself once space is freed "
            f"(free now: {self.reserve.free_bytes() // 1024} KB)."
        )
        try:
            await self._log.append(
                conversation_id,
                error_observation(text, error_id=DISK_FULL, source=EventSource.ENVIRONMENT),
                secrets,
            )
        except StorageError as exc:
            logger.debug("could not store the disk-full event of %s: %s", conversation_id, exc)
            return
        self._noticed.add(conversation_id)
        await self._log.publish_status(conversation_id, status_update("error", DISK_FULL, text))

    async def wait_for_room(self) -> bool:
        """When the disk was full: whether it has room again (the reserve is recreated)."""
        if not self.health.full:
            return True
        if not self.reserve.has_room():
            return False
        await self.reserve.ensure()
        return True

    # --- the notice for a resumed loop ----------------------------------------------------
    def defer_notice(self, conversation_id: str, failure: StorageError) -> None:
        """The loop gave up: keep the event telling why, for when it resumes."""
        what = "its disk was full" if isinstance(failure, StorageFull) else "it was unreachable"
        self._notices[conversation_id] = (
            f"The conversation paused because convo could not store its events for "
            f"{self._policy.seconds:.0f} s ({what}); it resumed once its database was back. "
            f"Last error: {failure}"
        )

    def take_notice(self, conversation_id: str) -> Event | None:
        text = self._notices.pop(conversation_id, None)
        if text is None:
            return None
        return error_observation(text, error_id=STORAGE_LOST, source=EventSource.ENVIRONMENT)
