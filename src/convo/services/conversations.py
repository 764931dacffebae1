"""ConversationManager: start, stop, evict and talk to conversations in this process.

Start is idempotent and race-free: the check and the registration happen under the
conversation's own lock, so any number of concurrent starts of one conversation yield
exactly one loop, while starts of different conversations never wait for each other. No
lock is held while other loops are stopped (eviction) or a loop's cancelled task is waited
for; stopping is ``conversation_stops.py``'s (a stop says whether the loop really ended,
``StopResult``). Every loop is an owned,
named task; a stored event's metadata is noted in memory and written by ``MetadataSync``'s
own task, never on the loop's append path.

Which conversations should run is stored (``desired_running``): set by a start, cleared by a
user's stop (and by eviction, idle closing or a failed start), and left as it is by a server
shutdown, so that the ``Supervisor`` (``supervisor.py``) resumes them on the next start-up.
``shutdown`` (also ``aclose``) refuses new starts, lets running commands finish within the
grace period, then stops every loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from typing import Any

from convo.cluster.base import EventBus
from convo.config import Settings
from convo.domain.conversation import (
    AgentState,
    ConversationMetadata,
    ConversationStatus,
    ProviderType,
)
from convo.domain.events import (
    ActionType,
    Event,
    mask_text,
)
from convo.errors import (
    ConversationNotFound,
    LLMNotConfigured,
    RecordNotFound,
    ServerShuttingDown,
    StorageError,
    UnsupportedUserAction,
)
from convo.llm.base import LLMClient, LLMClientFactory, LLMConfig
from convo.runtime.base import SandboxFactory
from convo.runtime.quota import ensure_free_disk
from convo.services.action_journal import ActionJournal
from convo.services.conversation_records import (
    CreatedConversation,
    check_id,
)
from convo.services.conversation_records import NewConversation as NewConversation  # re-export
from convo.services.conversation_stops import StoppableConversations
from convo.services.durable_writes import DurableWriter, RetryPolicy
from convo.services.event_log import EventLog
from convo.services.feedback import FeedbackLog
from convo.services.idle_sandboxes import ReleasableSandboxes
from convo.services.loop_storage import LoopStorage
from convo.services.orphans import ProcessRegistry
from convo.services.running import LoopDeps, RunningConversation, run_conversation
from convo.services.shutdown import stop_gracefully
from convo.services.storage_health import DiskReserve
from convo.services.supervisor import Supervisor
from convo.services.user_config import ConversationConfig, resolve_llm
from convo.services.user_events import (
    BROWSE_ACTIONS,
    USER_ACTIONS,
    browse_answer,
    parse_user_event,
    under_confirmation,
)
from convo.storage.base import Storage

logger = logging.getLogger(__name__)


class ConversationManager(StoppableConversations):
    def __init__(
        self,
        *,
        settings: Settings,
        storage: Storage,
        bus: EventBus,
        sandbox_factory: SandboxFactory,
        llm_factory: LLMClientFactory,
    ) -> None:
        super().__init__(settings, storage, EventLog(storage.events, bus))
        self._starts = 0  # starts between their closing check and their registration
        self._no_starts = asyncio.Event()
        self._no_starts.set()
        self._shutdown_task: asyncio.Task[None] | None = None
        self.processes = ProcessRegistry(settings.resolved_data_dir() / "run")
        self.supervisor = Supervisor(self, settings)
        # the loops' own way in: a few of their calls at a time, API requests go past them
        self._loop_storage = LoopStorage(storage.events, storage.settings)
        loop_log = EventLog(self._loop_storage.events, bus)
        self.writer = DurableWriter(
            loop_log,
            self.health,
            DiskReserve(settings.resolved_data_dir(), settings.disk_reserve_mb * 2**20),
            RetryPolicy(settings.storage_retry_seconds, settings.storage_retry_max_delay_seconds),
        )
        self.journal = ActionJournal(settings.resolved_data_dir() / "results")
        self.feedback = FeedbackLog(settings.resolved_data_dir() / "feedback")
        self._deps = LoopDeps(
            event_log=loop_log,
            sandbox_factory=ReleasableSandboxes(sandbox_factory, self.processes),
            llm_factory=llm_factory,
            workspace_for=self.workspace_path,
            command_timeout_seconds=settings.command_timeout_seconds,
            max_output_chars=settings.max_output_chars,
            processes=self.processes,
            on_event=self._on_event,
            on_exit=self._on_exit,
            writer=self.writer,
            journal=self.journal,
            llm_config=self._current_llm_config,
        )

    # --- lifecycle ---------------------------------------------------------------------
    async def __aenter__(self) -> ConversationManager:
        """Kill what a killed predecessor left, resume what should run, then supervise."""
        await self.writer.reserve.ensure()
        self.metadata_sync.start()
        await self.supervisor.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.shutdown()

    @property
    def closing(self) -> bool:
        return self._closing

    async def shutdown(self, grace_seconds: float | None = None) -> None:
        """Refuse new starts, let running commands finish (half the grace period at most),
        stop every loop without recording a user stop, flush metadata. Idempotent."""
        if self._shutdown_task is None:
            grace = (
                self._settings.shutdown_grace_seconds if grace_seconds is None else grace_seconds
            )
            self._shutdown_task = asyncio.create_task(
                self._shutdown(grace), name="conversations:shutdown"
            )
        await asyncio.shield(self._shutdown_task)

    async def _shutdown(self, grace: float) -> None:
        self._closing = True
        await self._no_starts.wait()  # a start in progress registers first, or sees _closing
        await self.supervisor.aclose()

        async def stop(conversation_id: str, wait_seconds: float) -> bool:
            result = await self._stop(conversation_id, record_stop=False, wait_seconds=wait_seconds)
            return result.ended

        await stop_gracefully(list(self._running.values()), stop, grace)
        await self.metadata_sync.aclose()

    # --- queries -----------------------------------------------------------------------
    def status(self, conversation_id: str) -> ConversationStatus:
        running = self._running.get(conversation_id)
        return running.status if running is not None else ConversationStatus.STOPPED

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

    # --- for the supervisor ------------------------------------------------------------
    async def kill_leftovers(self) -> None:
        await asyncio.to_thread(self.processes.kill_leftovers)

    async def flush_metadata(self) -> None:
        await self.metadata_sync.flush_all()

    # --- commands ----------------------------------------------------------------------
    async def start(
        self,
        conversation_id: str,
        user_id: str | None,
        providers_set: list[ProviderType] | None = None,
        created: CreatedConversation | None = None,
    ) -> ConversationStatus:
        """Start the conversation's loop unless it runs; returns its status. ``created``:
        what its create read just now, not to be read again."""
        running = self._running.get(conversation_id)
        if (
            running is not None
            and running.user_id == user_id
            and conversation_id not in self._stopping
        ):
            return running.status  # the common case, without a database read
        config = None
        if created is not None and created.config is not None and not providers_set:
            metadata, config = created.metadata, created.config
        else:
            metadata = await self.get_metadata(conversation_id)
        if metadata.user_id != user_id:
            raise ConversationNotFound(conversation_id)  # not the caller's conversation
        await self._ensure_free_disk()
        self._unstored_stops.pop(conversation_id, None)  # a start overrides an unstored stop
        status = await self._start_loop(conversation_id, providers_set, metadata, config)
        assert status is not None  # only a resume declines
        return status

    async def _ensure_free_disk(self) -> None:
        """Raise DiskNearlyFull while the data dir's disk is nearly full."""
        await asyncio.to_thread(
            ensure_free_disk, self._settings.resolved_data_dir(), self._settings.min_free_disk_mb
        )

    async def resume(self, conversation_id: str) -> ConversationStatus | None:
        """Start a loop the store says should run (after a restart); None when it no longer
        should (stopped or deleted meanwhile)."""
        return await self._start_loop(conversation_id, None, None)

    async def _start_loop(
        self,
        conversation_id: str,
        providers_set: list[ProviderType] | None,
        metadata: ConversationMetadata | None,
        config: ConversationConfig | None = None,
    ) -> ConversationStatus | None:
        """Register and launch the loop; ``metadata`` None: resume, if still wanted.

        A loop being stopped is waited for first, so that the new loop starts after the old
        one's STOPPED event instead of being reported as running while it goes away. Only
        this conversation's lock is held, and only until its loop is registered; loops over
        the user's limit are stopped afterwards, under their own locks. A start reads the
        user's settings before taking the lock; a resume reads them under it, after it has
        read (under the lock) that the conversation should still run."""
        providers_set = providers_set or None
        if config is None and metadata is not None:
            config = await self._config(metadata, providers_set)
        while True:
            await self._stopped(conversation_id)
            async with self._locks.hold(conversation_id):
                if conversation_id in self._stopping:
                    continue  # another stop began meanwhile: wait for it too
                running = self._running.get(conversation_id)
                if running is not None:
                    return running.status
                if self._closing:
                    raise ServerShuttingDown
                self._begin_start()
                try:
                    if metadata is None:  # read now: a user's stop may just have landed
                        try:
                            metadata = await self._storage.conversations.get(conversation_id)
                        except RecordNotFound:
                            return None
                        if not metadata.desired_running:
                            return None
                        logger.info("resuming conversation %s", conversation_id)
                        providers_set = metadata.providers_set or None  # the tokens it had
                    running = await self._launch(metadata, providers_set, config)
                finally:
                    self._end_start()
            break
        await self._evict_over_limit(running)
        return running.status

    def _begin_start(self) -> None:
        self._starts += 1
        self._no_starts.clear()

    def _end_start(self) -> None:
        self._starts -= 1
        if not self._starts:
            self._no_starts.set()

    async def _config(
        self, metadata: ConversationMetadata, providers_set: list[ProviderType] | None
    ) -> ConversationConfig:
        return await self._user_config(metadata.user_id, providers_set)

    async def _launch(
        self,
        metadata: ConversationMetadata,
        providers_set: list[ProviderType] | None,
        config: ConversationConfig | None,
    ) -> RunningConversation:
        """Create and register the loop's task (the conversation's lock is held)."""
        conversation_id = metadata.conversation_id
        if config is None:
            config = await self._config(metadata, providers_set)
        if not metadata.desired_running or metadata.providers_set != providers_set:
            # stored before the loop exists: a crash from now on resumes it, with these tokens
            await self._storage.conversations.update_fields(
                conversation_id, desired_running=True, providers_set=providers_set
            )
        running = RunningConversation(metadata, config, replay=self.take_replay(conversation_id))
        self._running[conversation_id] = running
        running.task = asyncio.create_task(
            run_conversation(running, self._deps), name=f"conversation:{conversation_id}"
        )
        # also when cancelled before its first step, when its body's cleanup never runs
        running.task.add_done_callback(lambda _task: self._discard(running))
        return running

    async def delete(self, conversation_id: str) -> bool:
        check_id(conversation_id)
        with contextlib.suppress(RecordNotFound):  # nothing may resume it while it goes
            await self._storage.conversations.update_fields(conversation_id, desired_running=False)
        await self._stop(
            conversation_id, record_stop=False, wait_seconds=self._settings.stop_timeout_seconds
        )
        deleted = await self._storage.conversations.delete(conversation_id)
        workspace = self.workspace_path(conversation_id)
        await asyncio.to_thread(shutil.rmtree, workspace, True)
        self.journal.forget(conversation_id)
        self.take_replay(conversation_id)
        return deleted

    async def send_user_event(self, conversation_id: str, data: dict[str, Any]) -> Event:
        """A user event from a client: stored, then handed to the loop (started if needed)."""
        metadata = await self.get_metadata(conversation_id)
        event = parse_user_event(data)
        running = self._running.get(conversation_id)
        if event.action in USER_ACTIONS:  # carried out by the loop: it must be there
            if running is None:
                raise UnsupportedUserAction(
                    f"The conversation is not running: start it before sending {event.action!r}"
                )
            event = under_confirmation(event, running.config.confirmation_mode)
        secrets = (
            running.config.secret_values()
            if running is not None
            else await self._stored_secret_values(metadata.user_id)
        )
        if event.action == ActionType.MESSAGE:
            await self._maybe_set_title(
                conversation_id, mask_text(event.message, secrets), metadata
            )
        await self._stopped(conversation_id)  # the message then comes after the STOPPED event
        running = self._running.get(conversation_id)
        stored = await self._log.append(conversation_id, event, secrets)
        if event.action in BROWSE_ACTIONS:  # no browser here: answered at once, loop or not
            await self._log.append(conversation_id, browse_answer(stored), secrets)
            return stored
        if running is not None:
            running.touch()
            running.inbox.put_nowait(stored)
        elif event.action == ActionType.MESSAGE:
            await self.start(conversation_id, metadata.user_id)
        return stored

    async def llm_client(self, user_id: str | None) -> LLMClient:
        """A client for the user's model, for a call outside any loop (remember-prompt)."""
        config = (await self._user_config(user_id)).llm
        if config is None:
            raise LLMNotConfigured("No LLM is configured: set CONVO_LLM_MODEL or save settings")
        return self._deps.llm_factory(config)

    async def _current_llm_config(self, running: RunningConversation) -> LLMConfig | None:
        """The user's LLM settings as saved now: a change reaches the next LLM call."""
        user = await self._loop_storage.load_settings(running.user_id)
        return resolve_llm(self._settings, user)

    async def _on_event(self, running: RunningConversation, event: Event) -> None:
        self.metadata_sync.note(running.conversation_id, event)  # no I/O on the append path

    def _discard(self, running: RunningConversation) -> None:
        if self._running.get(running.conversation_id) is running:
            del self._running[running.conversation_id]

    async def _on_exit(self, running: RunningConversation, failure: BaseException | None) -> None:
        """Runs as the loop's task ends, however it ends: the status is STOPPED at once.

        A loop that failed is not resumed, unless storage failed it: that one should run
        again once storage is back (the stored state could not be written anyway)."""
        self._discard(running)
        failed = failure is not None and not isinstance(failure, StorageError)
        fields: dict[str, object] = {"desired_running": False} if failed else {}
        try:
            await self.metadata_sync.flush(running.conversation_id, **fields)
        except StorageError as exc:
            self.health.failed(exc)
        except Exception:
            logger.exception("could not record the end of %s", running.conversation_id)
        self.metadata_sync.forget(running.conversation_id)
