"""The Supervisor: stored state reconciled with what runs, at start-up and on a schedule.

At start-up it first kills the shell processes a killed predecessor left behind, then looks
at every conversation the store says should run (``desired_running``) and that no loop runs:
with ``on_restart="resume"`` (the default) its loop is started again, the agent rebuilt from
the event log in the same workspace; with ``"stop"`` it is marked stopped, with an event
saying why. Oldest first, so that the per-user limit keeps the most recently active ones.

Every ``reconcile_interval_seconds`` it does the same again (a loop that should run and does
not is resumed, whatever the reason: a loop that gave up during a storage outage is resumed
once storage answers again), restarts a loop that stopped making progress (its agent
running, nothing stored for ``stalled_loop_seconds``), closes idle loops nobody listens to,
and writes the metadata still pending. While the data dir's disk is full nothing is resumed:
each conversation that should run gets an error event saying why (in the space the disk
reserve frees), and resumes once there is room. It is one named task, owned by the
ConversationManager, cancelled on shutdown; a failing round is logged and the next one runs
as usual.

It sees the manager only through ``Supervised``, the few things a supervisor needs: what
should run, what runs, resume, stop, interrupt, recording why a conversation is not running,
and the state of storage.

In cluster mode (several servers on one PostgreSQL database) what "should run and does not"
means every node's view: the conversations that should run and whose lease no node holds
live (their owner stopped, died or froze past ``lease_seconds``). Every node's supervisor
looks for them every third of the lease time, and the one whose acquire wins resumes each,
exactly as after a restart. Without Redis a second server on the same database is refused
at start (``storage.server_claim``), so one supervisor sees everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from convo.aio import cancel_and_await
from convo.config import Settings
from convo.domain.conversation import AgentState, ConversationMetadata, ConversationStatus
from convo.domain.events import Event, EventSource, agent_state_changed, error_observation
from convo.errors import ConvoError, RecordNotFound, StorageError, StorageFull
from convo.services.durable_writes import DurableWriter
from convo.services.event_log import status_update
from convo.services.idle_sandboxes import ReleasableSandbox
from convo.services.running import RunningConversation
from convo.services.stopping import StopResult
from convo.services.storage_health import StorageHealth

logger = logging.getLogger(__name__)

STOPPED_BY_RESTART = "STATUS$STOPPED_BY_RESTART"
RESUME_FAILED = "STATUS$ERROR_RESUME"


class Supervised(Protocol):
    """What the supervisor needs of the conversations it watches (the ConversationManager)."""

    @property
    def closing(self) -> bool:
        """The server shuts down: start nothing."""

    async def kill_leftovers(self) -> None:
        """Kill the processes a killed predecessor left behind."""

    async def wanted_running(self) -> list[ConversationMetadata]:
        """The conversations the store says should run."""

    def is_running(self, conversation_id: str) -> bool: ...

    def running_conversations(self) -> list[RunningConversation]: ...

    def num_connections(self, conversation_id: str) -> int: ...

    async def resume(self, conversation_id: str) -> ConversationStatus | None:
        """Start its loop if it should still run; None when it no longer should."""

    async def stop(self, conversation_id: str) -> StopResult: ...

    async def abandon(
        self,
        conversation_id: str,
        events: Sequence[Event],
        status: dict[str, Any] | None = None,
    ) -> None:
        """Mark it as not to be run, with the events (and status update) saying why."""

    async def flush_metadata(self) -> None:
        """Write the metadata still pending."""

    async def store_pending_stops(self) -> None:
        """Store the users' stops a storage outage kept from being stored."""

    async def interrupt(self, conversation_id: str) -> StopResult:
        """End its loop without recording a stop: the next round resumes it."""

    @property
    def health(self) -> StorageHealth:
        """The current storage outage, if any."""

    @property
    def writer(self) -> DurableWriter:
        """The loops' writes (the disk reserve, the full-disk events)."""


@dataclass
class Reconciliation:
    """What one round did."""

    resumed: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class Supervisor:
    def __init__(self, manager: Supervised, settings: Settings) -> None:
        self._manager = manager
        self._settings = settings
        self._task: asyncio.Task[None] | None = None
        self._poked = asyncio.Event()
        self.rounds = 0

    async def start(self) -> Reconciliation:
        """The start-up round (awaited: statuses are truthful before the first request),
        then the periodic task."""
        await self._manager.kill_leftovers()
        first = await self.reconcile()
        self._task = asyncio.create_task(self._forever(), name="conversations:supervisor")
        return first

    async def aclose(self) -> None:
        task, self._task = self._task, None
        await cancel_and_await(task)

    @property
    def interval(self) -> float:
        """Seconds between rounds: in a cluster, often enough to take over within the
        lease time."""
        seconds = self._settings.reconcile_interval_seconds
        if self._settings.cluster_mode:
            return min(seconds, self._settings.lease_seconds / 3)
        return seconds

    def poke(self) -> None:
        """Run the next round now (another node let go of a conversation)."""
        self._poked.set()

    async def _forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), self.interval)
            self._poked.clear()
            try:
                await self.run_round()
            except StorageError as exc:  # logged once per outage
                self._manager.health.failed(exc)
            except Exception:
                logger.exception("supervisor round failed")

    async def run_round(self) -> Reconciliation:
        await self.restart_stalled()
        if not self._manager.health.down:  # both write: wait for storage to be back
            await self.reap_idle()
            await self.release_idle_sandboxes()
            await self._manager.flush_metadata()
        return await self.reconcile()

    # --- reconciling -------------------------------------------------------------------
    async def reconcile(self) -> Reconciliation:
        """Start (or mark stopped) every conversation that should run and does not."""
        self.rounds += 1
        result = Reconciliation()
        if self._manager.closing:
            return result
        health = self._manager.health
        try:
            await self._manager.store_pending_stops()
            wanted = await self._manager.wanted_running()
        except StorageError as exc:  # logged once per outage; the next round tries again
            health.failed(exc)
            return result
        if not health.full:
            health.recovered()
        orphaned = [m for m in wanted if not self._manager.is_running(m.conversation_id)]
        orphaned.sort(key=lambda m: m.last_updated_at)
        if orphaned and not await self._disk_has_room([m.conversation_id for m in orphaned]):
            return result
        for metadata in orphaned:
            conversation_id = metadata.conversation_id
            try:
                if self._settings.on_restart == "stop":
                    await self._mark_stopped(metadata)
                    result.stopped.append(conversation_id)
                elif await self._manager.resume(conversation_id) is not None:
                    result.resumed.append(conversation_id)
            except StorageError as exc:  # storage went away again: the next round retries
                health.failed(exc)
                break
            except Exception as exc:  # one conversation must not keep the others (or the
                if self._manager.closing:  # server's start-up) from resuming
                    break
                logger.exception("could not resume %s", conversation_id)
                result.failed.append(conversation_id)
                await self._record_failure(conversation_id, exc)
        if orphaned:
            logger.info(
                "reconciled: %d resumed, %d marked stopped, %d failed",
                len(result.resumed),
                len(result.stopped),
                len(result.failed),
            )
        return result

    async def _disk_has_room(self, conversation_ids: list[str]) -> bool:
        """False while the disk is full: each of these conversations is told why it does not
        resume (once per full disk), and resumes in a later round."""
        writer = self._manager.writer
        if not writer.health.full and not writer.reserve.has_room():
            writer.health.failed(StorageFull("The disk of the data dir is full"))
        if await writer.wait_for_room():
            return True
        for conversation_id in conversation_ids:
            await writer.tell_disk_full(conversation_id, resuming=True)
        return False

    async def _mark_stopped(self, metadata: ConversationMetadata) -> None:
        conversation_id = metadata.conversation_id
        reason = (
            "The server stopped while this conversation was running, and it is configured not "
            "to resume conversations (CONVO_ON_RESTART=stop). Start it again to continue."
        )
        await self._manager.abandon(
            conversation_id,
            [
                error_observation(
                    reason, error_id=STOPPED_BY_RESTART, source=EventSource.ENVIRONMENT
                ),
                agent_state_changed(AgentState.STOPPED, reason),
            ],
        )

    async def _record_failure(self, conversation_id: str, exc: Exception) -> None:
        message = f"The conversation could not be resumed after a restart: {exc}"
        with contextlib.suppress(ConvoError):
            await self._manager.abandon(
                conversation_id,
                [
                    error_observation(
                        message, error_id=RESUME_FAILED, source=EventSource.ENVIRONMENT
                    ),
                    agent_state_changed(AgentState.ERROR, message),
                ],
                status_update("error", RESUME_FAILED, message),
            )

    # --- idle loops and sandboxes ------------------------------------------------------
    async def release_idle_sandboxes(self) -> list[str]:
        """Release the sandboxes of conversations that have not worked for
        ``sandbox_idle_seconds`` (their loops go on: the next command gets a new one)."""
        delay = self._settings.sandbox_idle_seconds
        if delay <= 0:
            return []
        now = time.monotonic()
        released = []
        for conversation in self._manager.running_conversations():
            sandbox = conversation.sandbox
            if (
                isinstance(sandbox, ReleasableSandbox)
                and not sandbox.released
                and conversation.is_idle
                and now - max(conversation.last_active, sandbox.last_used) > delay
            ):
                try:
                    if await sandbox.release():
                        released.append(conversation.conversation_id)
                except Exception:
                    logger.exception(
                        "could not release the sandbox of %s", conversation.conversation_id
                    )
        return released

    async def restart_stalled(self) -> list[str]:
        """Restart loops whose agent is running but that stored nothing for too long."""
        limit = self._settings.stalled_loop_seconds
        now = time.monotonic()
        stalled = [
            c.conversation_id
            for c in self._manager.running_conversations()
            if c.agent_state is AgentState.RUNNING and now - c.last_active > limit
        ]
        for conversation_id in stalled:
            logger.warning(
                "conversation %s stored nothing for %.0f s while running: restarting its loop",
                conversation_id,
                limit,
            )
            await self._manager.interrupt(conversation_id)
        return stalled

    async def reap_idle(self) -> list[str]:
        """Close loops idle longer than ``idle_close_seconds`` with nobody listening (their
        conversations are STOPPED; the next message or start resumes them)."""
        delay = self._settings.idle_close_seconds
        if delay <= 0:
            return []
        now = time.monotonic()
        idle = [
            c.conversation_id
            for c in self._manager.running_conversations()
            if c.is_idle
            and now - c.last_active > delay
            and not self._manager.num_connections(c.conversation_id)
        ]
        for conversation_id in idle:
            logger.info("closing idle conversation %s", conversation_id)
            with contextlib.suppress(RecordNotFound):
                await self._manager.stop(conversation_id)
        return idle
